// Chat-format data for `data convert`: TRL/OpenAI `messages`, ShareGPT `conversations` and TRL
// prompt/completion pairs, each conversation one record whose earlier answers are scored too
// (loss_on_history); malformed turns refused at file:line with their key; and files named as
// users name them: the domain map's entry found by stem, else by the detected format, or named
// with --source, and said in the summary.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "data/convert/convert_files.h"
#include "data/convert/domain_entry.h"
#include "data/convert/formats.h"
#include "data/domain_map.h"
#include "data/mix.h"

namespace fs = std::filesystem;
using namespace mf;

namespace {

class ChatData : public ::testing::Test {
 protected:
  void SetUp() override {
    // One directory per test process: ctest runs this file's tests in parallel.
    dir_ = fs::temp_directory_path() / ("moeforge_chat_data_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    const fs::path p = dir_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
  Converted convert(const std::string& path, const std::string& expected_format, BadRecordPolicy& bad) {
    const Format& f = detect_data_format(sample_file(path));
    EXPECT_EQ(f.name, expected_format) << path;
    return f.convert(ConvertInput{path, fs::path(path).stem().string(), {}}, bad);
  }
  // The first problem of a strict conversion, "file:line: reason".
  std::string first_error(const std::string& path, const std::string& format) {
    BadRecordPolicy strict;
    try {
      find_data_format(format).convert(ConvertInput{path, "x", {}}, strict);
    } catch (const Error& e) {
      return e.what();
    }
    ADD_FAILURE() << "no error for " << path;
    return "";
  }
  fs::path dir_;
};

std::vector<std::string> roles(const SftRecord& r) {
  std::vector<std::string> out;
  for (const ChatTurn& t : r.history) out.push_back(t.role);
  return out;
}

TEST_F(ChatData, MessagesBecomeOneRecordPerConversation) {
  const auto p = write("chats.jsonl",
                       R"({"messages": [{"role": "system", "content": " Be brief. "}, {"role": "user", "content": "Hi"},)"
                       R"( {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Name a colour"},)"
                       R"( {"role": "assistant", "content": "Red."}]})" "\n"
                       R"({"messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}]})" "\n"
                       // Joined turns of one speaker, an opening assistant turn and a trailing question.
                       R"({"messages": [{"role": "assistant", "content": "Welcome"}, {"role": "user", "content": "a"},)"
                       R"( {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"},)"
                       R"( {"role": "user", "content": "unanswered"}], "id": 7})" "\n"
                       // Nothing to learn: no answer, an empty last answer.
                       R"({"messages": [{"role": "user", "content": "hello?"}]})" "\n"
                       R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "  "}]})" "\n");
  BadRecordPolicy bad;
  const Converted c = convert(p, "messages", bad);
  ASSERT_EQ(c.records.size(), 3u);
  EXPECT_EQ(c.dropped, 2);
  const SftRecord& a = c.records[0];
  EXPECT_EQ(a.instruction, "Name a colour");
  EXPECT_EQ(a.output, "Red.");
  EXPECT_EQ(roles(a), (std::vector<std::string>{"system", "user", "assistant"}));
  EXPECT_EQ(a.history[0].content, "Be brief.");
  EXPECT_TRUE(a.loss_on_history);
  EXPECT_EQ(a.source, "chats");
  const SftRecord& b = c.records[1];
  EXPECT_EQ(b.instruction, "What is 2+2?");
  EXPECT_TRUE(b.history.empty());
  EXPECT_FALSE(b.loss_on_history) << "one exchange is a plain record";
  const SftRecord& d = c.records[2];
  EXPECT_EQ(d.instruction, "a\n\nb");
  EXPECT_EQ(d.output, "c");
  EXPECT_TRUE(d.history.empty());
  // What convert writes reads back unchanged.
  const SftRecord back = sft_record_from_json(to_json(a));
  EXPECT_EQ(roles(back), roles(a));
  EXPECT_TRUE(back.loss_on_history);
}

TEST_F(ChatData, ShareGptConversationsInAJsonArray) {
  const auto p = write("sharegpt_chats.json",
                       "[\n"
                       R"({"conversations": [{"from": "system", "value": "You are kind."}, {"from": "human", "value": "Hi"},)"
                       R"( {"from": "gpt", "value": "Hello"}, {"from": "human", "value": "Bye"}, {"from": "gpt", "value": "Ciao"}]},)"
                       "\n"
                       R"({"conversations": [{"from": "user", "value": "x"}, {"from": "assistant", "value": "y"}]})"
                       "\n]\n");
  BadRecordPolicy bad;
  const Converted c = convert(p, "sharegpt", bad);
  ASSERT_EQ(c.records.size(), 2u);
  EXPECT_EQ(c.records[0].instruction, "Bye");
  EXPECT_EQ(c.records[0].output, "Ciao");
  EXPECT_EQ(roles(c.records[0]), (std::vector<std::string>{"system", "user", "assistant"}));
  EXPECT_EQ(c.records[0].history[2].content, "Hello");
  EXPECT_EQ(c.records[1].output, "y");
}

TEST_F(ChatData, PromptCompletionPairsPlainAndConversational) {
  const auto p = write("pairs.jsonl",
                       R"({"prompt": "The capital of France is", "completion": " Paris."})" "\n"
                       R"({"prompt": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"},)"
                       R"( {"role": "user", "content": "Sky colour?"}], "completion": [{"role": "assistant", "content": "Blue"}]})" "\n"
                       R"({"prompt": "empty answer", "completion": ""})" "\n");
  BadRecordPolicy bad;
  const Converted c = convert(p, "prompt_completion", bad);
  ASSERT_EQ(c.records.size(), 2u);
  EXPECT_EQ(c.dropped, 1);
  EXPECT_EQ(c.records[0].instruction, "The capital of France is");
  EXPECT_EQ(c.records[0].output, "Paris.");
  EXPECT_EQ(c.records[1].instruction, "Sky colour?");
  EXPECT_EQ(c.records[1].output, "Blue");
  EXPECT_TRUE(c.records[1].loss_on_history);
  const auto mixed = write("mixed.jsonl", R"({"prompt": "a", "completion": [{"role": "assistant", "content": "b"}]})" "\n");
  EXPECT_NE(first_error(mixed, "prompt_completion").find("mixed.jsonl:1: fields \"prompt\" and \"completion\" must both"),
            std::string::npos);
}

TEST_F(ChatData, BadTurnsAreRefusedAtFileLineAndKey) {
  const auto p = write("bad_chats.jsonl",
                       R"({"messages": [{"role": "user", "content": "ok"}, {"role": "assistant", "content": "fine"}]})" "\n"
                       R"({"messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "42"}]})" "\n"
                       R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]})" "\n"
                       R"({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": null,)"
                       R"( "tool_calls": [{"id": "1"}]}]})" "\n"
                       R"({"messages": [{"role": "user", "content": "x"}, {"role": "system", "content": "late"}]})" "\n"
                       R"({"messages": "hello"})" "\n"
                       R"({"messages": [{"content": "x"}]})" "\n"
                       R"({"messages": [["user", "x"]]})" "\n");
  const std::string strict = first_error(p, "messages");
  EXPECT_NE(strict.find("bad_chats.jsonl:2: messages[1].role: unknown role \"tool\" (known: assistant, system, user)"),
            std::string::npos) << strict;
  BadRecordPolicy skip(true);
  const Converted c = find_data_format("messages").convert({p, "bad_chats", {}}, skip);
  EXPECT_EQ(c.records.size(), 1u);
  ASSERT_EQ(skip.skipped(), 7);
  const std::vector<std::string> want = {
      ":2: messages[1].role: unknown role \"tool\"",
      ":3: messages[0].content: expected a string, got array (content as a list of parts is not read)",
      ":4: messages[1].tool_calls: tool calls are not read",
      ":5: messages[1]: a system turn is read only as the first turn",
      ":6: field \"messages\" must be a list of {role, content} turns, got string",
      ":7: messages[0].role: missing",
      ":8: messages[0]: expected a {role, content} object, got array"};
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_NE(skip.examples()[i].find("bad_chats.jsonl" + want[i]), std::string::npos) << skip.examples()[i];

  const auto sg = write("bad_sharegpt.jsonl", R"({"conversations": [{"from": "human", "value": "x"}, {"from": "bing", "value": "y"}]})" "\n");
  EXPECT_NE(first_error(sg, "sharegpt")
                .find("bad_sharegpt.jsonl:1: conversations[1].from: unknown role \"bing\" (known: assistant, gpt, human, "
                      "system, user)"),
            std::string::npos);
}

TEST_F(ChatData, AStrayClosingBraceInAJsonArrayIsOneBadRecord) {
  // Found by fuzz_chat_data: a '}' at the array's top level ended an element without being
  // consumed, so with --skip-bad the reader reported empty elements forever.
  const auto p = write("stray.json", "[\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n"
                                     "{\"messages\": []}\n");
  BadRecordPolicy skip(true);
  const Converted c = find_data_format("messages").convert({p, "stray", {}}, skip);
  EXPECT_TRUE(c.records.empty());
  ASSERT_EQ(skip.skipped(), 1);
  EXPECT_NE(skip.examples()[0].find("stray.json:1: truncated JSON array"), std::string::npos) << skip.examples()[0];
  const auto ok = write("ok.json", "[{\"messages\": [{\"role\": \"user\", \"content\": \"a}\"}, "
                                   "{\"role\": \"assistant\", \"content\": \"b]\"}]}, {\"x\": 1} ]");
  BadRecordPolicy skip2(true);
  EXPECT_EQ(find_data_format("messages").convert({ok, "ok", {}}, skip2).records.size(), 1u);
  EXPECT_EQ(skip2.skipped(), 1) << "the second element has no messages";
}

TEST_F(ChatData, ConversationsLongerThanTheCapAreRefused) {
  nlohmann::json turns = nlohmann::json::array();
  for (size_t i = 0; i <= kMaxConversationTurns; ++i)
    turns.push_back({{"role", i % 2 ? "assistant" : "user"}, {"content", "x"}});
  const auto p = write("long.jsonl", nlohmann::json{{"messages", turns}}.dump() + "\n");
  EXPECT_NE(first_error(p, "messages").find("long.jsonl:1: field \"messages\" holds 1025 turns"), std::string::npos);
}

TEST_F(ChatData, DetectionByFields) {
  EXPECT_EQ(detect_data_format(sample_file(write("a.jsonl", R"({"messages": []})" "\n"))).name, "messages");
  EXPECT_EQ(detect_data_format(sample_file(write("b.json", R"([{"conversations": [], "id": "x"}])"))).name, "sharegpt");
  EXPECT_EQ(detect_data_format(sample_file(write("c.jsonl", R"({"prompt": "p", "completion": "c"})" "\n"))).name,
            "prompt_completion");
  // A preference pair (prompt, chosen, rejected) is not a completion.
  EXPECT_EQ(detect_data_format(sample_file(write("d.jsonl", R"({"prompt": "p", "chosen": "c", "rejected": "r"})" "\n"))).name,
            "hh_rlhf");
}

TEST(ChatMix, ConversationsEndingAlikeAreNotDuplicates) {
  SftRecord a;
  a.instruction = "echo dog";
  a.output = "dog";
  a.history = {{"user", "echo cat 1"}, {"assistant", "cat 1"}};
  SftRecord b = a;
  b.history[0].content = "echo cat 2";
  EXPECT_EQ(dedupe_key(a), dedupe_key(b)) << "history is context: the same record";
  a.loss_on_history = b.loss_on_history = true;
  EXPECT_NE(dedupe_key(a), dedupe_key(b)) << "whole conversations: different records";
  b.history[0].content = "ECHO  cat 1";
  EXPECT_EQ(dedupe_key(a), dedupe_key(b)) << "up to case and whitespace, as for the other fields";
}

const char* kMap =
    "domains: [Coder, Writer, Encyclopedia, Actor]\n"
    "sources:\n"
    "  alpaca_sample: &general\n"
    "    default: Encyclopedia\n"
    "    rules: [{field: instruction, regex: poem, domain: Writer}]\n"
    "  code_alpaca: Coder\n"
    "  alpaca: *general\n"
    "  messages: Actor\n";

TEST(DomainEntry, StemThenDetectedFormatOrSourceOption) {
  const DomainMap m = DomainMap::parse(kMap, "map.yaml");
  const auto choose = [&](const std::string& stem, const std::string& format, const std::string& forced = "") {
    const DomainEntryChoice c = choose_domain_entry(m, stem + ".json", stem, format, forced);
    return c.entry + " (" + domain_entry_reason_name(c.reason) + ")";
  };
  EXPECT_EQ(choose("alpaca_sample", "alpaca"), "alpaca_sample (file stem)");
  EXPECT_EQ(choose("code_alpaca_2k", "alpaca"), "code_alpaca (file stem)");
  EXPECT_EQ(choose("alpaca_heldout", "alpaca"), "alpaca (file stem)") << "an entry covers NAME_*";
  EXPECT_EQ(choose("my_alpaca", "alpaca"), "alpaca (detected format)");
  EXPECT_EQ(choose("chats", "messages"), "messages (detected format)");
  EXPECT_EQ(choose("my_alpaca", "alpaca", "code_alpaca"), "code_alpaca (--source)");
  EXPECT_EQ(choose("my_alpaca", "alpaca", "code_alpaca_2k"), "code_alpaca (--source)") << "a source name works too";
  try {
    choose("my_dolly", "dolly");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("my_dolly.json: the domain map map.yaml has no entry for the source 'my_dolly' "
                                         "nor for its format 'dolly'"),
              std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--source NAME"), std::string::npos) << e.what();
  }
  EXPECT_THROW(choose("my_alpaca", "alpaca", "poems"), Error);
  // Under the alias the format entry has the same rules.
  SftRecord r;
  r.instruction = "write a poem";
  EXPECT_EQ(m.domain_of(r, "alpaca"), "Writer");
  EXPECT_EQ(m.domain_of(r, "alpaca_sample"), "Writer");
}

TEST(DomainEntry, AConversationsRulesReadEveryUserTurn) {
  const DomainMap m = DomainMap::parse(kMap, "map.yaml");
  SftRecord r;
  r.history = {{"system", "a poem is nice"}, {"user", "Write a poem about rain"}, {"assistant", "Drops."}};
  r.instruction = "Shorter, please";
  r.output = "Rain.";
  EXPECT_EQ(m.domain_of(r, "alpaca"), "Encyclopedia") << "history of a record that is not a whole conversation";
  r.loss_on_history = true;
  EXPECT_EQ(m.domain_of(r, "alpaca"), "Writer") << "the first user turn set the topic";
  r.history[1].content = "Tell me about rain";
  EXPECT_EQ(m.domain_of(r, "alpaca"), "Encyclopedia") << "a system turn is not a user turn";
}

TEST(DomainEntry, TheShippedMapHasAnEntryForEveryInstructionFormat) {
  const DomainMap m =
      DomainMap::load((fs::path(std::getenv("MOEFORGE_SOURCE_DIR")) / "examples/data/domains.yaml").string());
  for (const Format& f : data_formats())
    if (f.kind == OutputKind::instructions) {
      EXPECT_TRUE(m.has_entry(f.name)) << f.name;
    }
  // The shared datasets keep the entries of their own names.
  EXPECT_EQ(m.entry_covering("alpaca_sample"), "alpaca_sample");
  EXPECT_EQ(m.entry_covering("code_alpaca_2k"), "code_alpaca");
  EXPECT_EQ(m.entry_covering("gsm8k_train"), "gsm8k");
}

TEST_F(ChatData, ConvertFilesSaysWhichEntryEachFileUsed) {
  const DomainMap m = DomainMap::parse(kMap, "map.yaml");
  const auto mine = write("raw/my_alpaca.json", R"([{"instruction": "Write a poem", "output": "Roses"}])");
  const auto held = write("raw/alpaca_heldout.json", R"([{"instruction": "Who?", "output": "Ada"}])");
  const auto chats = write("raw/chats.jsonl",
                           R"({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]})" "\n");
  std::ostringstream progress;
  const fs::path out = dir_ / "out";
  auto files = convert_files({mine, held, chats}, out.string(), ConvertOptions{}, &m, progress);
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0].domain_entry, "alpaca");
  EXPECT_EQ(files[0].domain_entry_reason, "detected format");
  EXPECT_EQ(files[0].domains.at("Writer"), 1);
  EXPECT_EQ(files[1].domain_entry, "alpaca");
  EXPECT_EQ(files[1].domain_entry_reason, "file stem");
  EXPECT_EQ(files[2].domain_entry, "messages");
  EXPECT_EQ(files[2].domains.at("Actor"), 1);
  EXPECT_NE(progress.str().find("domains by sources.alpaca (detected format)"), std::string::npos) << progress.str();
  std::ifstream summary(out / "summary.json");
  const nlohmann::json s = nlohmann::json::parse(summary);
  EXPECT_EQ(s["files"][0]["domain_entry"], "alpaca");
  EXPECT_EQ(s["files"][0]["domain_entry_reason"], "detected format");
  // The record's source stays the file's stem (mix caps and output names go by it).
  BadRecordPolicy strict;
  EXPECT_EQ(read_sft_jsonl((out / "my_alpaca.jsonl").string(), strict).at(0).source, "my_alpaca");

  ConvertOptions forced;
  forced.source = "code_alpaca";
  files = convert_files({mine, chats}, (dir_ / "out2").string(), forced, &m, progress);
  EXPECT_EQ(files[0].domain_entry, "code_alpaca");
  EXPECT_EQ(files[0].domain_entry_reason, "--source");
  EXPECT_EQ(files[0].domains.at("Coder"), 1);
  EXPECT_EQ(files[1].domains.at("Coder"), 1);
  forced.source = "nothing";
  EXPECT_THROW(convert_files({mine}, (dir_ / "out3").string(), forced, &m, progress), Error);
  EXPECT_FALSE(fs::exists(dir_ / "out3")) << "refused before anything is written";
}

}  // namespace

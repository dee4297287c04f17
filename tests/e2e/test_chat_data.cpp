// Chat-format data and files named as users name them, through the CLI: `data convert` reads
// messages / ShareGPT / prompt-completion files with the shipped domain map, says which map
// entry each file used (stem, detected format or --source), refuses bad turns at file:line with
// their key; `train` on the converted conversations scores every assistant turn, or only the
// last with data.loss_on: last_assistant.
#include <gtest/gtest.h>

#include <regex>

#include <nlohmann/json.hpp>

#include "cli_run.h"

namespace {
using namespace mf::test;

class ChatData : public ::testing::Test {
 protected:
  void SetUp() override {
    if (binary().empty()) GTEST_SKIP() << "MOEFORGE_BIN not set (run through ctest)";
    // One directory per test process (ctest runs this file's tests in parallel), absolute paths.
    dir_ = fs::temp_directory_path() / ("moeforge_chat_e2e_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "raw");
    const char* src = std::getenv("MOEFORGE_SOURCE_DIR");
    shipped_map_ = fs::path(src ? src : ".") / "examples" / "data" / "domains.yaml";
    std::ofstream(dir_ / "raw" / "my_alpaca.json")
        << R"([{"instruction": "Write a poem about the sea", "input": "", "output": "Waves."},)"
        << R"( {"instruction": "Who wrote Hamlet?", "input": "", "output": "Shakespeare."}])";
    std::ofstream(dir_ / "raw" / "alpaca_heldout.json")
        << R"([{"instruction": "Summarize this text", "input": "A long text.", "output": "Short."}])";
    std::ofstream chats(dir_ / "raw" / "chats.jsonl");
    for (int i = 0; i < 24; ++i)
      chats << R"({"messages": [{"role": "system", "content": "you echo"}, {"role": "user", "content": "echo cat )" << i
            << R"("}, {"role": "assistant", "content": "cat )" << i << R"("}, {"role": "user", "content": "echo dog"},)"
            << R"( {"role": "assistant", "content": "dog"}]})" << "\n";
    std::ofstream(dir_ / "raw" / "talks.json")
        << R"([{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}])";
    std::ofstream(dir_ / "raw" / "pairs.jsonl") << R"({"prompt": "2+2=", "completion": " 4"})" << "\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  RunResult convert(const std::vector<std::string>& files, const std::string& out, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"data", "convert"};
    for (const auto& f : files) args.push_back((dir_ / "raw" / f).string());
    for (const auto& a : std::vector<std::string>{"-o", (dir_ / out).string(), "--domains", shipped_map_.string()})
      args.push_back(a);
    args.insert(args.end(), extra.begin(), extra.end());
    return run(args);
  }
  fs::path dir_, shipped_map_;
};

TEST_F(ChatData, ConvertReadsChatFormatsAndSaysWhichEntryEachFileUsed) {
  auto r = convert({"my_alpaca.json", "alpaca_heldout.json", "chats.jsonl", "talks.json", "pairs.jsonl"}, "unified");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.err, "chats.jsonl (messages): 24 records")) << r.err;
  EXPECT_TRUE(has(r.err, "talks.json (sharegpt): 1 records")) << r.err;
  EXPECT_TRUE(has(r.err, "pairs.jsonl (prompt_completion): 1 records")) << r.err;
  EXPECT_TRUE(has(r.out, "domain map entries:")) << r.out;
  EXPECT_TRUE(has(r.out, "my_alpaca: sources.alpaca (detected format)")) << r.out;
  EXPECT_TRUE(has(r.out, "alpaca_heldout: sources.alpaca (file stem)")) << r.out;
  EXPECT_TRUE(has(r.out, "chats: sources.messages (detected format)")) << r.out;
  EXPECT_TRUE(has(r.out, "talks: sources.sharegpt (detected format)")) << r.out;
  EXPECT_TRUE(has(r.out, "pairs: sources.prompt_completion (detected format)")) << r.out;
  // The Alpaca rules spread the files' records: a poem is writing, a summary summarizing.
  std::ifstream mine(dir_ / "unified" / "my_alpaca.jsonl");
  std::string line;
  std::getline(mine, line);
  EXPECT_EQ(nlohmann::json::parse(line)["domain"], "Writer") << line;
  std::ifstream held(dir_ / "unified" / "alpaca_heldout.jsonl");
  std::getline(held, line);
  EXPECT_EQ(nlohmann::json::parse(line)["domain"], "Summarizer") << line;
  std::ifstream chats(dir_ / "unified" / "chats.jsonl");
  std::getline(chats, line);
  const auto rec = nlohmann::json::parse(line);
  EXPECT_EQ(rec["instruction"], "echo dog");
  EXPECT_EQ(rec["history"][0]["role"], "system");
  EXPECT_EQ(rec["loss_on_history"], true);
  const auto summary = nlohmann::json::parse(slurp(dir_ / "unified" / "summary.json"));
  EXPECT_EQ(summary["files"][0]["domain_entry"], "alpaca");
  EXPECT_EQ(summary["files"][0]["domain_entry_reason"], "detected format");

  r = convert({"my_alpaca.json", "chats.jsonl"}, "forced", {"--source", "code_alpaca"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.out, "my_alpaca: sources.code_alpaca (--source)")) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(my_alpaca\s+0\s+0\s+2\s)"))) << r.out;  // Coder is the 3rd column
  r = convert({"my_alpaca.json"}, "none", {"--source", "nobody"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.err, "--source nobody: the domain map")) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "none"));

  r = run({"data", "convert", "--help"});
  EXPECT_TRUE(has(r.out, "--source") && has(r.out, "messages") && has(r.out, "sharegpt") &&
              has(r.out, "prompt_completion")) << r.out;
}

TEST_F(ChatData, AFileNoEntryAppliesToIsRefusedWithTheFix) {
  std::ofstream(dir_ / "map.yaml") << "domains: [Coder]\nsources:\n  code_alpaca: Coder\n";
  auto r = run({"data", "convert", (dir_ / "raw" / "my_alpaca.json").string(), "-o", (dir_ / "out").string(),
                "--domains", (dir_ / "map.yaml").string()});
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.err, "my_alpaca.json: the domain map " + (dir_ / "map.yaml").string() +
                             " has no entry for the source 'my_alpaca' nor for its format 'alpaca'")) << r.err;
  EXPECT_TRUE(has(r.err, "--source NAME")) << r.err;
}

TEST_F(ChatData, BadTurnsStopTheRunAtFileLineAndKey) {
  std::ofstream(dir_ / "raw" / "chats.jsonl", std::ios::app)
      << R"({"messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "42"}]})" << "\n";
  auto r = convert({"chats.jsonl"}, "bad");
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.err, "chats.jsonl:25: messages[1].role: unknown role \"tool\"")) << r.err;
  r = convert({"chats.jsonl"}, "skipped", {"--skip-bad"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.out, "skipped bad records in")) << r.out;
}

TEST_F(ChatData, TrainingScoresEveryAssistantTurnOrTheLast) {
  ASSERT_EQ(convert({"chats.jsonl"}, "unified").rc, 0);
  std::ofstream corpus(dir_ / "corpus.txt");
  for (int i = 0; i < 20; ++i)
    corpus << "<|im_start|>system user assistant<|im_end|>\n you echo cat dog 0123456789\nthe cat and the dog.\n";
  corpus.close();
  std::ofstream(dir_ / "pretrain.yaml")
      << "model:\n  init: scratch\n"
         "  config: {model_type: llama, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1,\n"
         "           num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 256,\n"
         "           tie_word_embeddings: true}\n"
         "tokenizer: char\n"
         "data: {train: corpus.txt, valid_fraction: 0.1}\n"
         "train: {steps: 2, batch: 2, seq_len: 16, lr: 1.0e-3, warmup: 0, eval_windows: 1}\n"
         "output: " << (dir_ / "pre").string() << "\n";
  auto r = run({"train", (dir_ / "pretrain.yaml").string(), "--quiet"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto sft = [&](const std::string& loss_on) {
    std::ofstream(dir_ / "sft.yaml") << "model: {init: " << (dir_ / "pre" / "model").string() << "}\n"
                                     << "tokenizer: model\n"
                                        "data:\n  train: unified/chats.jsonl\n  valid_fraction: 0.25\n"
                                     << loss_on
                                     << "train: {steps: 2, batch: 4, seq_len: 240, lr: 1.0e-3, warmup: 0, eval_windows: 0}\n"
                                        "output: " << (dir_ / ("sft" + std::to_string(loss_on.size()))).string() << "\n";
    return run({"train", (dir_ / "sft.yaml").string()});
  };
  // "N instruction examples (R read), A answer tokens of T": A for both choices.
  const auto answer_tokens = [](const RunResult& res) {
    std::smatch m;
    EXPECT_TRUE(std::regex_search(res.err, m, std::regex(R"(24 instruction examples \(24 read\), (\d+) answer tokens)")))
        << res.err;
    return m.empty() ? 0L : std::stol(m[1]);
  };
  r = sft("");
  ASSERT_EQ(r.rc, 0) << r.err;
  const long all = answer_tokens(r);
  r = sft("  loss_on: last_assistant\n");
  ASSERT_EQ(r.rc, 0) << r.err;
  const long last = answer_tokens(r);
  // The char tokenizer: one token per character. Each conversation's "cat N<|im_end|>\n" is
  // scored only with all_assistant, its "dog<|im_end|>\n" with both.
  EXPECT_EQ(last, 24 * 14) << "dog<|im_end|>\\n";
  EXPECT_EQ(all - last, 10 * 16 + 14 * 17) << "cat 0<|im_end|>\\n ... cat 23<|im_end|>\\n";
  r = sft("  loss_on: every\n");
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.err, "'data.loss_on' must be all_assistant or last_assistant, got 'every'")) << r.err;
  // The file as downloaded, not converted: the error says what to do.
  r = run({"train", (dir_ / "sft.yaml").string(), "--set", "data.train=" + (dir_ / "raw" / "chats.jsonl").string(),
           "--set", "data.loss_on=all_assistant"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.err, "chats.jsonl:1: expected an object with a string field \"text\" (this is chat-format data: "
                         "`moeforge data convert` it first")) << r.err;
}

}  // namespace

// SFT masks for whole conversations (chat-format data): every assistant turn's content and its
// end-of-turn marker are scored, nothing else (system, user, template scaffolding, SmolLM2's
// default system prompt); data.loss_on: last_assistant scores the last turn only; records that
// are not whole conversations tokenize exactly as they always did (the earlier rule is written
// out below and compared byte for byte, packed as the token cache stores it).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "chat/chat_template.h"
#include "core/error.h"
#include "data/sft_tokenize.h"
#include "tokenizer/tokenizer.h"
#include "train/sft_inputs.h"

namespace fs = std::filesystem;

namespace {

// SmolLM2-135M-Instruct's own template (its GGUF's tokenizer.chat_template): ChatML with a
// default system prompt when the conversation opens without one.
const char* kSmolLM2Template =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou "
    "are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + "
    "message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt "
    "%}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const char* kCorpus = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'<>|_\n";

struct Model {
  explicit Model(const std::string& source) : tmpl(source, "", "") {}
  std::unique_ptr<mf::Tokenizer> tok = mf::make_char_tokenizer(kCorpus);
  mf::ChatTemplate tmpl;
  mf::RenderChat render = [this](const std::vector<mf::ChatTurn>& turns, bool gen) {
    std::vector<mf::ChatMessage> m;
    for (const auto& t : turns) m.push_back({t.role, t.content});
    return tmpl.render(m, gen);
  };
};

// A conversation as the chat converters write it: last exchange as instruction/output.
mf::SftRecord conversation(std::vector<mf::ChatTurn> history, std::string user, std::string answer) {
  mf::SftRecord r;
  r.history = std::move(history);
  r.instruction = std::move(user);
  r.output = std::move(answer);
  r.domain = "Actor";
  r.source = "chats";
  r.loss_on_history = true;
  return r;
}

struct Spans {
  std::vector<std::string> scored, unscored;  // maximal runs of one mask value, decoded
};

Spans decode_spans(const mf::Tokenizer& tok, const std::vector<int32_t>& tokens, const std::vector<uint8_t>& mask) {
  EXPECT_EQ(tokens.size(), mask.size());
  Spans s;
  for (size_t i = 0; i < tokens.size();) {
    size_t j = i;
    while (j < tokens.size() && mask[j] == mask[i]) ++j;
    (mask[i] ? s.scored : s.unscored).push_back(tok.decode(std::vector<int32_t>(tokens.begin() + i, tokens.begin() + j)));
    i = j;
  }
  return s;
}

Spans tokenize(const Model& m, const mf::SftRecord& r, mf::AssistantTurns turns) {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> mask;
  mf::tokenize_sft_record(r, *m.tok, m.render, tokens, mask, turns);
  return decode_spans(*m.tok, tokens, mask);
}

TEST(SftTurns, EveryAssistantTurnOfAConversationIsScoredOnTheSmolLM2Template) {
  const Model m(kSmolLM2Template);
  const mf::SftRecord r = conversation({{"user", "hi"}, {"assistant", "hello, how can I help?"},
                                        {"user", "name a colour"}, {"assistant", "red"}},
                                       "another", "blue");
  const Spans all = tokenize(m, r, mf::AssistantTurns::all);
  EXPECT_EQ(all.scored, (std::vector<std::string>{"hello, how can I help?<|im_end|>\n", "red<|im_end|>\n",
                                                  "blue<|im_end|>\n"}));
  // The default system prompt, each user turn and each turn's header stay unscored.
  EXPECT_EQ(all.unscored, (std::vector<std::string>{
                              "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
                              "Face<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
                              "<|im_start|>user\nname a colour<|im_end|>\n<|im_start|>assistant\n",
                              "<|im_start|>user\nanother<|im_end|>\n<|im_start|>assistant\n"}));

  const Spans last = tokenize(m, r, mf::AssistantTurns::last);
  EXPECT_EQ(last.scored, (std::vector<std::string>{"blue<|im_end|>\n"}));
  ASSERT_EQ(last.unscored.size(), 1u);
  EXPECT_EQ(last.unscored[0], all.unscored[0] + all.scored[0] + all.unscored[1] + all.scored[1] + all.unscored[2]);
}

TEST(SftTurns, ASystemTurnIsNeverScored) {
  const Model m(kSmolLM2Template);
  const mf::SftRecord r =
      conversation({{"system", "be brief"}, {"user", "one"}, {"assistant", "1"}}, "two", "2");
  const Spans s = tokenize(m, r, mf::AssistantTurns::all);
  EXPECT_EQ(s.scored, (std::vector<std::string>{"1<|im_end|>\n", "2<|im_end|>\n"}));
  ASSERT_EQ(s.unscored.size(), 2u);
  EXPECT_EQ(s.unscored[0], "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\none<|im_end|>\n"
                           "<|im_start|>assistant\n");
}

// The rule every record followed before conversations were scored whole, kept here verbatim:
// the prompt (generation prompt after history and user turn) unscored, the rest scored.
void earlier_rule(const mf::SftRecord& r, const mf::Tokenizer& tok, const mf::RenderChat& render,
                  std::vector<int32_t>& tokens, std::vector<uint8_t>& mask) {
  std::vector<mf::ChatTurn> turns = r.history;
  turns.push_back({"user", mf::user_message(r)});
  const std::string prompt = render(turns, true);
  turns.push_back({"assistant", r.output});
  const std::string full = render(turns, false);
  tokens = mf::encode_for_model(tok, prompt);
  if (tok.add_eos && !tokens.empty() && tokens.back() == tok.eos_id) tokens.pop_back();
  mask.assign(tokens.size(), 0);
  const std::vector<int32_t> answer = tok.encode(std::string_view(full).substr(prompt.size()), true);
  tokens.insert(tokens.end(), answer.begin(), answer.end());
  mask.resize(tokens.size(), 1);
}

TEST(SftTurns, RecordsThatAreNotWholeConversationsTokenizeAsBefore) {
  for (const char* source : {kSmolLM2Template, mf::default_chatml_template().c_str()}) {
    const Model m(source);
    std::vector<mf::SftRecord> records;
    mf::SftRecord single;
    single.instruction = "Add.";
    single.input = "2, 3";
    single.output = "5";
    single.domain = "Thinker";
    records.push_back(single);
    // DailyDialog / hh-rlhf: history is context only.
    mf::SftRecord dialogue = conversation({{"user", "hi"}, {"assistant", "hey"}}, "how are you?", "fine");
    dialogue.loss_on_history = false;
    records.push_back(dialogue);
    // A chat-format conversation of one exchange (with a system turn) is a plain record.
    records.push_back(conversation({{"system", "be kind"}}, "hello", "hi!"));
    for (const mf::SftRecord& r : records)
      for (mf::AssistantTurns turns : {mf::AssistantTurns::all, mf::AssistantTurns::last}) {
        std::vector<int32_t> tokens, want_tokens;
        std::vector<uint8_t> mask, want_mask;
        mf::tokenize_sft_record(r, *m.tok, m.render, tokens, mask, turns);
        earlier_rule(r, *m.tok, m.render, want_tokens, want_mask);
        EXPECT_EQ(tokens, want_tokens) << r.instruction;
        EXPECT_EQ(mask, want_mask) << r.instruction;
      }
    EXPECT_FALSE(mf::has_scored_history(records));
    // Packed as the token cache stores it, the whole set is byte-identical too.
    std::vector<int32_t> tokens, want;
    std::vector<uint8_t> mask;
    mf::SftExamples old_rule;
    old_rule.offsets.push_back(0);
    old_rule.domains = {"Actor", "Thinker"};
    for (const mf::SftRecord& r : records) {
      earlier_rule(r, *m.tok, m.render, tokens, mask);
      old_rule.tokens.insert(old_rule.tokens.end(), tokens.begin(), tokens.end());
      old_rule.loss_mask.insert(old_rule.loss_mask.end(), mask.begin(), mask.end());
      old_rule.offsets.push_back(int64_t(old_rule.tokens.size()));
      old_rule.domain.push_back(r.domain == "Actor" ? 0 : 1);
    }
    EXPECT_EQ(mf::pack_sft_examples(mf::tokenize_sft(records, *m.tok, m.render, {})), mf::pack_sft_examples(old_rule));
  }
}

TEST(SftTurns, ATemplateThatRewritesEarlierTurnsIsRefusedUnlessOnlyTheLastTurnIsScored) {
  // Like templates that strip reasoning from earlier answers: an assistant turn is rendered
  // differently once it is no longer the last, so its span in the whole conversation differs.
  const Model m("{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
                "{% if message['role'] == 'assistant' and not loop.last %}ok{% else %}{{ message['content'] }}{% endif %}"
                "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}");
  const mf::SftRecord r = conversation({{"user", "a"}, {"assistant", "long answer"}}, "b", "c");
  std::vector<int32_t> tokens;
  std::vector<uint8_t> mask;
  try {
    mf::tokenize_sft_record(r, *m.tok, m.render, tokens, mask, mf::AssistantTurns::all);
    ADD_FAILURE() << "no error";
  } catch (const mf::Error& e) {
    EXPECT_NE(std::string(e.what()).find("assistant turn 1 is not rendered as the start"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("data.loss_on: last_assistant"), std::string::npos) << e.what();
  }
  const Spans last = tokenize(m, r, mf::AssistantTurns::last);
  EXPECT_EQ(last.scored, (std::vector<std::string>{"c<|im_end|>\n"}));
}

TEST(SftTurns, ACutConversationKeepsItsEarlyTurnsScored) {
  const Model m(mf::default_chatml_template());
  const mf::SftRecord r =
      conversation({{"user", "q"}, {"assistant", "short"}}, std::string(300, 'x'), std::string(50, 'y'));
  mf::SftTokenizeOptions o;
  o.max_len = 80;
  mf::SftTokenizeStats st;
  const mf::SftExamples all = mf::tokenize_sft(std::vector<mf::SftRecord>{r}, *m.tok, m.render, o, &st);
  ASSERT_EQ(all.size(), 1u) << "the first answer starts inside max_len: kept, cut";
  EXPECT_EQ(st.truncated, 1);
  EXPECT_EQ(all.length(0), 80);
  EXPECT_EQ(all.answer_tokens(), int64_t(m.tok->encode("short<|im_end|>\n").size()));
  o.assistant_turns = mf::AssistantTurns::last;
  const mf::SftExamples last = mf::tokenize_sft(std::vector<mf::SftRecord>{r}, *m.tok, m.render, o, &st);
  EXPECT_EQ(last.size(), 0u) << "only the last answer counts, and it starts past max_len";
  EXPECT_EQ(st.dropped, 1);
}

TEST(SftTurns, TheTokenCacheKeepsTheTwoChoicesApart) {
  const fs::path dir = fs::temp_directory_path() / ("moeforge_sft_turns_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  setenv("MOEFORGE_CACHE", (dir / "cache").c_str(), 1);
  const fs::path data = dir / "chats.jsonl";
  std::ofstream(data) << mf::to_json(conversation({{"user", "hi"}, {"assistant", "hey"}}, "bye", "ciao")).dump() << "\n";
  const Model m(mf::default_chatml_template());
  mf::SftInputOptions o;
  o.quiet = true;
  o.tokenizer_source = "test";
  const auto scored = [&](mf::AssistantTurns t) {
    o.assistant_turns = t;
    return mf::load_sft_examples({data.string()}, *m.tok, m.tmpl, o).answer_tokens();
  };
  const int64_t all = scored(mf::AssistantTurns::all), last = scored(mf::AssistantTurns::last);
  EXPECT_EQ(last, int64_t(m.tok->encode("ciao<|im_end|>\n").size()));
  EXPECT_EQ(all, last + int64_t(m.tok->encode("hey<|im_end|>\n").size()));
  EXPECT_EQ(scored(mf::AssistantTurns::all), all) << "read back from the cache";
  EXPECT_EQ(scored(mf::AssistantTurns::last), last) << "read back from the cache";
  unsetenv("MOEFORGE_CACHE");
  fs::remove_all(dir);
}

TEST(SftTurns, RecordsReadAndWriteSystemTurnsAndTheConversationFlag) {
  mf::SftRecord r = conversation({{"system", "s"}, {"user", "u"}, {"assistant", "a"}}, "u2", "a2");
  const nlohmann::json j = mf::to_json(r);
  EXPECT_EQ(j["loss_on_history"], true);
  const mf::SftRecord back = mf::sft_record_from_json(j);
  EXPECT_TRUE(back.loss_on_history);
  ASSERT_EQ(back.history.size(), 3u);
  EXPECT_EQ(back.history[0].role, "system");
  r.loss_on_history = false;
  EXPECT_FALSE(mf::to_json(r).contains("loss_on_history")) << "written only when true: other records unchanged";
  nlohmann::json late = j;
  late["history"] = nlohmann::json::array({{{"role", "user"}, {"content", "u"}}, {{"role", "system"}, {"content", "s"}}});
  try {
    mf::sft_record_from_json(late);
    ADD_FAILURE() << "a system turn after the first was accepted";
  } catch (const mf::RecordError& e) {
    EXPECT_NE(std::string(e.what()).find("history[1]"), std::string::npos) << e.what();
  }
  nlohmann::json flag = j;
  flag["loss_on_history"] = "yes";
  EXPECT_THROW(mf::sft_record_from_json(flag), mf::RecordError);
}

TEST(SftTurns, RecipeNamesOfTheChoice) {
  EXPECT_EQ(mf::assistant_turns_from_name("all_assistant"), mf::AssistantTurns::all);
  EXPECT_EQ(mf::assistant_turns_from_name("last_assistant"), mf::AssistantTurns::last);
  EXPECT_STREQ(mf::assistant_turns_name(mf::AssistantTurns::last), "last_assistant");
  EXPECT_THROW(mf::assistant_turns_from_name("all"), mf::Error);
}

}  // namespace

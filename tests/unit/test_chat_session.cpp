// Generation and chat logic over a scripted fake model and a char tokenizer.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <string>

#include "core/error.h"
#include "infer/chat_session.h"
#include "infer/generate.h"

namespace {

const char* kCorpus = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 []<>!?.,\n";

// After the last ']' in its cache it "says" `reply` one char at a time, then EOS.
class ScriptedModel : public mf::LanguageModel {
 public:
  ScriptedModel(const mf::Tokenizer& tok, std::string reply, int ctx = 512) : tok_(tok), reply_(std::move(reply)), ctx_(ctx) {}
  std::vector<float> forward(std::span<const int32_t> tokens) override {
    EXPECT_LE(int(cache_.size() + tokens.size()), ctx_);
    cache_.insert(cache_.end(), tokens.begin(), tokens.end());
    processed += int(tokens.size());
    ++calls;
    int32_t close = *tok_.token_to_id("]");
    size_t start = cache_.size();
    while (start > 0 && cache_[start - 1] != close) --start;
    size_t k = cache_.size() - start;
    std::vector<float> logits(size_t(tok_.vocab_size()), 0.0f);
    int32_t next = k < reply_.size() ? tok_.encode(reply_.substr(k, 1))[0] : tok_.eos_id;
    logits[size_t(next)] = 10.0f;
    return logits;
  }
  int cache_length() const override { return int(cache_.size()); }
  void truncate(int n) override { cache_.resize(size_t(n)); }
  int context_length() const override { return ctx_; }
  int vocab_size() const override { return tok_.vocab_size(); }
  int processed = 0, calls = 0;

 private:
  const mf::Tokenizer& tok_;
  std::string reply_;
  int ctx_;
  std::vector<int32_t> cache_;
};

const char* kTemplate =
    "{% for m in messages %}[{{ m.role }}]{{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant]{% endif %}";

struct Fixture {
  std::unique_ptr<mf::Tokenizer> tok = mf::make_char_tokenizer(kCorpus);
  mf::GenerateOptions opts() const {
    mf::GenerateOptions o;
    o.max_tokens = 64;
    o.eos_ids = {tok->eos_id};
    return o;
  }
};

TEST(Generate, GreedyUntilEosWithStreaming) {
  Fixture f;
  ScriptedModel m(*f.tok, "Hello there!");
  mf::ModelContext ctx(m);
  auto prompt = f.tok->encode("[user]hi\n[assistant]");
  std::string streamed;
  auto res = mf::generate(ctx, *f.tok, prompt, f.opts(), [&](std::string_view s) { streamed += s; });
  EXPECT_EQ(res.text, "Hello there!");
  EXPECT_EQ(streamed, res.text);
  EXPECT_EQ(res.finish_reason, "eos");
  EXPECT_EQ(res.stats.generated_tokens, 12);
  EXPECT_EQ(res.stats.prompt_tokens, int(prompt.size()));
  EXPECT_EQ(m.processed, int(prompt.size()) + 12);  // one prefill + one step per token (the last one yields EOS)
}

// Says the character after the last one it saw (the alphabet in order), whatever came before.
class NextLetterModel : public mf::LanguageModel {
 public:
  explicit NextLetterModel(const mf::Tokenizer& tok) : tok_(tok) {}
  std::vector<float> forward(std::span<const int32_t> tokens) override {
    cache_.insert(cache_.end(), tokens.begin(), tokens.end());
    longest = std::max(longest, int(cache_.size()));
    std::vector<float> logits(size_t(tok_.vocab_size()), 0.0f);
    logits[size_t(cache_.back() + 1 < tok_.vocab_size() ? cache_.back() + 1 : cache_.back())] = 10.0f;
    return logits;
  }
  int cache_length() const override { return int(cache_.size()); }
  void truncate(int n) override { cache_.resize(size_t(n)); }
  int context_length() const override { return 512; }
  int vocab_size() const override { return tok_.vocab_size(); }
  int longest = 0;

 private:
  const mf::Tokenizer& tok_;
  std::vector<int32_t> cache_;
};

TEST(Generate, AWindowKeepsTheModelWithinItsTrainedContext) {
  Fixture f;
  NextLetterModel m(*f.tok);
  mf::ModelContext ctx(m);
  mf::GenerateOptions o = f.opts();
  o.max_tokens = 20;
  o.window = 6;
  const auto res = mf::generate(ctx, *f.tok, f.tok->encode("0123456789a"), o, nullptr);
  EXPECT_EQ(res.text, "bcdefghijklmnopqrstu");
  EXPECT_LE(m.longest, 6);
  EXPECT_EQ(res.finish_reason, "length");
}

TEST(Generate, StopStringSpanningTokensIsNeverEmitted) {
  Fixture f;
  ScriptedModel m(*f.tok, "Yes<END>more text");
  mf::ModelContext ctx(m);
  auto o = f.opts();
  o.stop = {"<END>"};
  std::string streamed;
  auto res = mf::generate(ctx, *f.tok, f.tok->encode("[user]q\n[assistant]"), o,
                          [&](std::string_view s) { streamed += s; });
  EXPECT_EQ(res.text, "Yes");
  EXPECT_EQ(streamed, "Yes");
  EXPECT_EQ(res.finish_reason, "stop");
}

TEST(Generate, HeldBackPrefixIsReleasedWhenItDoesNotComplete) {
  Fixture f;
  ScriptedModel m(*f.tok, "a<EN b<E");
  mf::ModelContext ctx(m);
  auto o = f.opts();
  o.stop = {"<END>"};
  auto res = mf::generate(ctx, *f.tok, f.tok->encode("[assistant]"), o);
  EXPECT_EQ(res.text, "a<EN b<E");
  EXPECT_EQ(res.finish_reason, "eos");
}

TEST(Generate, MaxTokensEndsWithLength) {
  Fixture f;
  ScriptedModel m(*f.tok, "abcdefghij");
  mf::ModelContext ctx(m);
  auto o = f.opts();
  o.max_tokens = 4;
  auto res = mf::generate(ctx, *f.tok, f.tok->encode("[assistant]"), o);
  EXPECT_EQ(res.text, "abcd");
  EXPECT_EQ(res.finish_reason, "length");
}

TEST(Generate, PromptLongerThanContextIsAnError) {
  Fixture f;
  ScriptedModel m(*f.tok, "x", 8);
  mf::ModelContext ctx(m);
  EXPECT_THROW(mf::generate(ctx, *f.tok, f.tok->encode("[assistant] far too long"), f.opts()), mf::Error);
}

TEST(StopStringFilter, EdgeCases) {
  mf::StopStringFilter f({"ab", "xyz"});
  EXPECT_EQ(f.push("12a"), "12");
  EXPECT_EQ(f.push("c"), "ac");
  EXPECT_EQ(f.push("x"), "");
  EXPECT_EQ(f.push("y"), "");
  EXPECT_EQ(f.push("q"), "xyq");
  EXPECT_EQ(f.push("xya"), "xy");
  EXPECT_EQ(f.push("b tail"), "");
  EXPECT_TRUE(f.stopped());
  mf::StopStringFilter g({"END"});
  EXPECT_EQ(g.push("E"), "");
  EXPECT_EQ(g.flush(), "E");
}

TEST(ChatSession, TwoTurnsReuseTheCache) {
  Fixture f;
  ScriptedModel m(*f.tok, "Fine.");
  mf::ChatTemplate tmpl(kTemplate, "", "");
  mf::ChatOptions co;
  co.system_prompt = "Be brief.";
  co.generation = f.opts();
  mf::ChatSession chat(m, *f.tok, tmpl, co);
  auto r1 = chat.send("Hi");
  EXPECT_EQ(r1.text, "Fine.");
  EXPECT_EQ(r1.stats.reused_tokens, 0);
  auto r2 = chat.send("And you?");
  EXPECT_EQ(r2.text, "Fine.");
  // Everything up to the first answer is still cached.
  EXPECT_GE(r2.stats.reused_tokens, r1.stats.prompt_tokens + 4);
  ASSERT_EQ(chat.turns().size(), 4u);
  EXPECT_EQ(chat.turns()[3].content, "Fine.");
  auto msgs = chat.messages();
  EXPECT_EQ(msgs[0].role, "system");
  chat.reset();
  EXPECT_TRUE(chat.turns().empty());
  EXPECT_EQ(chat.messages().size(), 1u);
}

TEST(ChatSession, TrimsOldestTurnsAndReportsIt) {
  Fixture f;
  ScriptedModel m(*f.tok, "ok", 90);
  mf::ChatTemplate tmpl(kTemplate, "", "");
  mf::ChatOptions co;
  co.system_prompt = "sys";
  co.generation = f.opts();
  co.generation.max_tokens = 10;
  mf::ChatSession chat(m, *f.tok, tmpl, co);
  std::vector<std::string> notices;
  chat.set_notice_callback([&](const std::string& n) { notices.push_back(n); });
  for (int i = 0; i < 6; ++i) chat.send("question number " + std::to_string(i));
  EXPECT_FALSE(notices.empty());
  EXPECT_NE(notices[0].find("dropped"), std::string::npos) << notices[0];
  auto msgs = chat.messages();
  EXPECT_EQ(msgs[0].role, "system");
  EXPECT_EQ(msgs[0].content, "sys");
  EXPECT_EQ(chat.turns().back().content, "ok");
  EXPECT_EQ(chat.turns()[chat.turns().size() - 2].content, "question number 5");
  EXPECT_LT(chat.turns().size(), 12u);
}

TEST(ChatSession, MessageThatCannotFitIsAnErrorAndLeavesHistory) {
  Fixture f;
  ScriptedModel m(*f.tok, "ok", 40);
  mf::ChatTemplate tmpl(kTemplate, "", "");
  mf::ChatOptions co;
  co.generation = f.opts();
  co.generation.max_tokens = 5;
  mf::ChatSession chat(m, *f.tok, tmpl, co);
  chat.send("hi");
  EXPECT_THROW(chat.send(std::string(60, 'x')), mf::Error);
  EXPECT_TRUE(chat.turns().empty() || chat.turns().back().role == "assistant");
}

TEST(Generate, CancelFlagStopsAtTheNextToken) {
  Fixture f;
  ScriptedModel m(*f.tok, "Hello there!");
  mf::ModelContext ctx(m);
  auto prompt = f.tok->encode("[user]hi\n[assistant]");
  std::atomic<bool> cancel{false};
  mf::GenerateOptions o = f.opts();
  o.cancel = &cancel;
  std::string streamed;
  // The flag goes up while the third character is being shown (as Ctrl-C would, from another
  // thread): that token is kept, no fourth is sampled.
  auto res = mf::generate(ctx, *f.tok, prompt, o, [&](std::string_view s) {
    streamed += s;
    if (streamed.size() == 3) cancel = true;
  });
  EXPECT_EQ(res.finish_reason, "cancelled");
  EXPECT_EQ(res.text, "Hel");
  EXPECT_EQ(streamed, "Hel");
  EXPECT_EQ(res.stats.generated_tokens, 3);
  EXPECT_EQ(res.tokens.size(), 3u);
  // A flag already up stops before the first token; the prompt is still prefilled.
  mf::ModelContext fresh(m);
  auto none = mf::generate(fresh, *f.tok, prompt, o);
  EXPECT_EQ(none.finish_reason, "cancelled");
  EXPECT_EQ(none.text, "");
  EXPECT_EQ(none.stats.generated_tokens, 0);
  // A lowered flag changes nothing.
  cancel = false;
  mf::ModelContext again(m);
  EXPECT_EQ(mf::generate(again, *f.tok, prompt, o).text, "Hello there!");
}

TEST(ChatSession, CancelledAnswerStaysAsTheAssistantTurn) {
  Fixture f;
  ScriptedModel m(*f.tok, "Fine, thanks.");
  mf::ChatTemplate tmpl(kTemplate, "", "");
  std::atomic<bool> cancel{false};
  mf::ChatOptions co;
  co.generation = f.opts();
  co.generation.cancel = &cancel;
  mf::ChatSession chat(m, *f.tok, tmpl, co);
  std::string shown;
  auto r = chat.send("Hi", [&](std::string_view s) {
    shown += s;
    if (shown == "Fine") cancel = true;
  });
  EXPECT_EQ(r.finish_reason, "cancelled");
  ASSERT_EQ(chat.turns().size(), 2u);
  EXPECT_EQ(chat.turns()[1].role, "assistant");
  EXPECT_EQ(chat.turns()[1].content, "Fine");
  // The conversation goes on from there.
  cancel = false;
  auto r2 = chat.send("And?");
  EXPECT_EQ(r2.finish_reason, "eos");
  EXPECT_EQ(r2.text, "Fine, thanks.");
  ASSERT_EQ(chat.turns().size(), 4u);
  EXPECT_EQ(chat.turns()[2].content, "And?");
}

TEST(ChatSession, AnswerCancelledBeforeItsFirstCharacterDropsTheMessage) {
  Fixture f;
  ScriptedModel m(*f.tok, "Fine.");
  mf::ChatTemplate tmpl(kTemplate, "", "");
  std::atomic<bool> cancel{true};
  mf::ChatOptions co;
  co.generation = f.opts();
  co.generation.cancel = &cancel;
  mf::ChatSession chat(m, *f.tok, tmpl, co);
  auto r = chat.send("Hi");
  EXPECT_EQ(r.finish_reason, "cancelled");
  EXPECT_TRUE(chat.turns().empty());
}

TEST(ChatSession, RestoreReplacesSystemPromptAndTurns) {
  Fixture f;
  ScriptedModel m(*f.tok, "ok");
  mf::ChatTemplate tmpl(kTemplate, "", "");
  mf::ChatOptions co;
  co.generation = f.opts();
  mf::ChatSession chat(m, *f.tok, tmpl, co);
  chat.send("first");
  chat.restore("Be brief.", {{"user", "a"}, {"assistant", "b"}});
  auto msgs = chat.messages();
  ASSERT_EQ(msgs.size(), 3u);
  EXPECT_EQ(msgs[0].role, "system");
  EXPECT_EQ(msgs[0].content, "Be brief.");
  EXPECT_EQ(msgs[2].content, "b");
  auto r = chat.send("c");
  EXPECT_EQ(r.text, "ok");
  EXPECT_EQ(chat.turns().size(), 4u);
}

}  // namespace

// Continuous batching (serve/batch_engine): a sequence's greedy output is the same whether it
// runs alone, beside 7 others, or after its slot served another prompt; stop strings, EOS,
// max_tokens, cancellation, the queue bound and the prompt cache behave as documented.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "core/error.h"
#include "infer/generate.h"
#include "infer/sampling.h"
#include "kernels/cpu/packed_quant.h"
#include "kernels/cpu/quant.h"
#include "model/init.h"
#include "model/transformer.h"
#include "serve/batch_engine.h"
#include "tokenizer/tokenizer.h"

namespace {

const char* kCorpus = "abcdefghijklmnopqrstuvwxyz .,!?";

mf::ModelConfig tiny(bool moe) {
  mf::ModelConfig c;
  c.model_type = "llama";
  c.vocab_size = 4 + 31;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.max_position_embeddings = 256;
  if (moe) {
    c.num_experts = 4;
    c.top_k = 2;
  }
  return c;
}

struct Outcome {
  std::vector<int32_t> tokens;
  std::string text;
  mf::SequenceResult result;
  std::vector<mf::TokenEvent> events;
};

// Holds the engine thread at a sequence's first token until the test opens it, so that what the
// test does meanwhile (queue, cancel) happens while that sequence is surely running.
struct FirstTokenGate {
  std::promise<void> reached;
  std::promise<void> open;
};

// Submits and returns a future of the outcome (callbacks run on the engine thread).
std::future<Outcome> submit(mf::BatchEngine& engine, mf::SequenceRequest req,
                            std::shared_ptr<mf::SequenceTicket>* ticket = nullptr,
                            std::shared_ptr<FirstTokenGate> gate = nullptr) {
  auto state = std::make_shared<Outcome>();
  auto done = std::make_shared<std::promise<Outcome>>();
  mf::SequenceSink sink;
  sink.on_token = [state, gate](const mf::TokenEvent& e) {
    if (gate && state->tokens.empty()) {
      gate->reached.set_value();
      gate->open.get_future().wait();
    }
    state->tokens.push_back(e.token);
    state->text += e.text;
    state->events.push_back(e);
  };
  sink.on_finish = [state, done](const mf::SequenceResult& r) {
    state->result = r;
    state->text += r.trailing_text;
    done->set_value(*state);
  };
  auto t = engine.submit(std::move(req), std::move(sink));
  if (ticket) *ticket = t;
  return done->get_future();
}

mf::SequenceRequest greedy(const mf::Tokenizer& tok, const std::string& prompt, int max_tokens) {
  mf::SequenceRequest r;
  r.prompt = tok.encode(prompt);
  r.max_tokens = max_tokens;
  return r;
}

class BatchEngineTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    tok_ = mf::make_char_tokenizer(kCorpus);
    model_ = std::make_unique<mf::Transformer>(mf::init_random_weights(tiny(GetParam()), 3, 0.3f));
  }
  std::unique_ptr<mf::Tokenizer> tok_;
  std::unique_ptr<mf::Transformer> model_;
};

// Runs 8 prompts alone, then together (prompts prefilled in chunks while others decode), on a
// KV cache of the given types; every sequence's greedy tokens must be the same both ways.
void expect_batching_is_exact(mf::Transformer& model, const mf::Tokenizer& tok, bool moe, mf::KVCacheTypes kv) {
  const std::vector<std::string> prompts = {"the cat sat", "a dog ran far", "hello", "quiet river.",
                                            "zebra", "more words here", "x", "seven old mills"};
  std::vector<std::vector<int32_t>> alone;
  {
    mf::EngineOptions o;
    o.parallel = 1;
    o.context = 128;
    o.kv_cache = kv;
    mf::BatchEngine engine(model, tok, o);
    for (const auto& p : prompts) alone.push_back(submit(engine, greedy(tok, p, 20)).get().tokens);
  }
  mf::EngineOptions o;
  o.parallel = 8;
  o.context = 128;
  o.prefill_chunk = 4;  // prompts prefill in chunks while others decode
  o.kv_cache = kv;
  mf::BatchEngine engine(model, tok, o);
  std::vector<std::future<Outcome>> together;
  for (const auto& p : prompts) together.push_back(submit(engine, greedy(tok, p, 20)));
  for (size_t i = 0; i < prompts.size(); ++i) {
    const Outcome out = together[i].get();
    EXPECT_EQ(out.tokens, alone[i]) << prompts[i];
    EXPECT_EQ(out.result.finish_reason, "length");
    EXPECT_EQ(out.result.completion_tokens, 20);
    EXPECT_EQ(out.result.prompt_tokens, int(prompts[i].size()));
  }
  const mf::EngineStats st = engine.stats();
  EXPECT_EQ(st.sequences_finished, 8);
  EXPECT_EQ(st.generated_tokens, 8 * 20);
  // Decode steps ran several sequences at once: far fewer steps than tokens.
  EXPECT_LT(st.decode_steps, 8 * 19);
  if (moe) {
    ASSERT_EQ(st.expert_load.size(), 2u);
    int64_t picks = 0;
    for (int64_t n : st.expert_load[0]) picks += n;
    EXPECT_EQ(picks, 2 * 8 * 20);  // top-2 of every token that produced logits
  }
}

TEST_P(BatchEngineTest, GreedyOutputIsTheSameAloneAndBesideSevenOthers) {
  expect_batching_is_exact(*model_, *tok_, GetParam(), {});
}

TEST_P(BatchEngineTest, AndSoOnAHalfPrecisionKVCache) {
  expect_batching_is_exact(*model_, *tok_, GetParam(), {mf::DType::F16, mf::DType::BF16});
}

// A Q8_0 model on the int8 kernels computes every row on its own at any batch size, so prompt
// chunks ride along in the decode steps of 16 sequences: fewer forward passes than decode steps
// plus chunks, and still every sequence's tokens are what it produces alone.
// The tiny model with its matrices in Q8_0 (the routers and the embedding stay fp32).
mf::ModelWeights quantized_tiny(bool moe) {
  mf::ModelConfig c = tiny(moe);
  c.hidden_size = 64;  // Q8_0 rows need multiples of 32
  c.intermediate_size = 96;
  mf::ModelWeights w = mf::init_random_weights(c, 5, 0.3f);
  for (auto& [name, t] : w.tensors) {
    const bool matrix = t.ndim() == 2 && t.dim(1) % 32 == 0 && name.find("embed") == std::string::npos &&
                        name.find(".gate.") == std::string::npos;  // the routers stay fp32
    if (!matrix) continue;
    mf::Tensor q = mf::Tensor::empty(mf::DType::Q8_0, t.shape());
    mf::quantize_row(mf::DType::Q8_0, t.data<float>(), q.raw(), t.numel());
    t = std::move(q);
  }
  return w;
}

TEST_P(BatchEngineTest, AnExpertCacheBudgetChangesNoTokenAndHoldsTheMemory) {
  if (!GetParam()) GTEST_SKIP() << "a dense model has no routed experts";
  // 16 sequences at once route to every expert of both layers each step; a budget of two
  // matrices' copies (of 24 routed ones) makes them drop and repack all the time.
  mf::Transformer free_model(quantized_tiny(true)), capped(quantized_tiny(true));
  if (free_model.pack_for_decode(mf::DecodeActivations::fp32) == 0) GTEST_SKIP() << "no packed kernels in this build";
  const size_t one = mf::PackedQuantMatrix(mf::Tensor::zeros(mf::DType::Q8_0, {96, 64})).bytes();  // gate, up
  capped.pack_for_decode(mf::DecodeActivations::fp32, 2 * one);
  std::vector<std::string> prompts;
  for (int i = 0; i < 16; ++i) prompts.push_back(std::string(size_t(2 + i), char('a' + i)) + " and so on.");
  auto run = [&](mf::Transformer& model) {
    mf::EngineOptions o;
    o.parallel = 16;
    o.context = 96;
    mf::BatchEngine engine(model, *tok_, o);
    std::vector<std::future<Outcome>> futures;
    for (const auto& p : prompts) futures.push_back(submit(engine, greedy(*tok_, p, 10)));
    std::vector<std::vector<int32_t>> tokens;
    for (auto& f : futures) tokens.push_back(f.get().tokens);
    return tokens;
  };
  EXPECT_EQ(run(capped), run(free_model));
  const mf::PackedCopies& copies = *capped.expert_copies();
  EXPECT_GT(copies.copies_dropped(), 0);
  EXPECT_LE(copies.resident_bytes(), copies.budget_bytes() + one);  // one copy may exceed a tight budget
  EXPECT_EQ(free_model.expert_copies()->copies_dropped(), 0);
  EXPECT_GE(free_model.expert_copies()->resident_bytes(), size_t(2 * 4 * 2) * one);  // all 24 kept
}

TEST_P(BatchEngineTest, PromptChunksRideAlongInDecodeStepsOfAQuantizedModel) {
  mf::Transformer model(quantized_tiny(GetParam()));
  if (model.pack_for_decode(mf::DecodeActivations::int8) == 0) GTEST_SKIP() << "no packed int8 kernels in this build";
  ASSERT_GT(model.batch_invariant_rows(), 1000);
  std::vector<std::string> prompts;
  for (int i = 0; i < 16; ++i) prompts.push_back(std::string(size_t(3 + i * 2), char('a' + i)) + " the end.");
  std::vector<std::vector<int32_t>> alone;
  {
    mf::EngineOptions o;
    o.parallel = 1;
    o.context = 128;
    mf::BatchEngine engine(model, *tok_, o);
    for (const auto& p : prompts) alone.push_back(submit(engine, greedy(*tok_, p, 12)).get().tokens);
  }
  mf::EngineOptions o;
  o.parallel = 16;
  o.context = 128;
  o.prefill_chunk = 8;
  mf::BatchEngine engine(model, *tok_, o);
  std::vector<std::future<Outcome>> together;
  int64_t chunks = 0;
  for (const auto& p : prompts) {
    together.push_back(submit(engine, greedy(*tok_, p, 12)));
    chunks += (int64_t(p.size()) + 7) / 8;
  }
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(together[i].get().tokens, alone[i]) << prompts[i];
  const mf::EngineStats st = engine.stats();
  EXPECT_LT(st.forward_passes, st.decode_steps + chunks) << "no prompt chunk shared a decode step";
}

TEST_P(BatchEngineTest, TheSameAsTheSingleSequenceGenerateLoop) {
  // The engine's sampling with a seed equals generate() over the same model.
  mf::SequenceRequest r = greedy(*tok_, "the cat", 12);
  r.sampling.temperature = 0.8f;
  r.sampling.top_k = 10;
  r.sampling.seed = 42;
  mf::EngineOptions o;
  o.parallel = 2;
  o.context = 64;
  mf::BatchEngine engine(*model_, *tok_, o);
  const Outcome got = submit(engine, r).get();

  mf::KVCache cache(model_->config(), 64);
  struct Lm : mf::LanguageModel {
    mf::Transformer& t;
    mf::KVCache& c;
    Lm(mf::Transformer& t, mf::KVCache& c) : t(t), c(c) {}
    std::vector<float> forward(std::span<const int32_t> tokens) override {
      mf::Tensor l = t.forward(tokens, 1, c);
      return {l.data<float>(), l.data<float>() + l.numel()};
    }
    int cache_length() const override { return c.length(0); }
    void truncate(int n) override { c.truncate(0, n); }
    int context_length() const override { return 64; }
    int vocab_size() const override { return t.config().vocab_size; }
  } lm(*model_, cache);
  mf::ModelContext ctx(lm);
  mf::GenerateOptions go;
  go.max_tokens = 12;
  go.sampling = r.sampling;
  const mf::GenerateResult want = mf::generate(ctx, *tok_, r.prompt, go);
  EXPECT_EQ(got.tokens, want.tokens);
  EXPECT_EQ(got.text, want.text);
}

TEST_P(BatchEngineTest, StopStringsEosAndPromptCache) {
  mf::EngineOptions o;
  o.parallel = 1;
  o.context = 64;
  mf::BatchEngine engine(*model_, *tok_, o);
  const Outcome free_run = submit(engine, greedy(*tok_, "abc", 16)).get();
  ASSERT_GE(free_run.text.size(), 4u);
  // Stop at the text of the 3rd..4th generated characters: never emitted, finish "stop".
  mf::SequenceRequest r = greedy(*tok_, "abc", 16);
  r.stop = {free_run.text.substr(2, 2)};
  const Outcome stopped = submit(engine, r).get();
  EXPECT_EQ(stopped.result.finish_reason, "stop");
  EXPECT_EQ(stopped.text, free_run.text.substr(0, free_run.text.find(r.stop[0])));
  // The slot still holds "abc": the same prompt reuses all but its last token.
  EXPECT_EQ(stopped.result.cached_tokens, 2);
  // EOS: the first free-run token as an EOS id ends the sequence before any text.
  mf::SequenceRequest e = greedy(*tok_, "abc", 16);
  e.eos_ids = {free_run.tokens[0]};
  const Outcome eos = submit(engine, e).get();
  EXPECT_EQ(eos.result.finish_reason, "stop");
  EXPECT_EQ(eos.result.completion_tokens, 0);
  EXPECT_TRUE(eos.text.empty());
}

// A prompt that starts like another slot's tokens (a system prompt every request shares) copies
// those keys and values from that slot, busy as it is, instead of computing them again.
TEST_P(BatchEngineTest, APromptSharedWithABusySlotIsCopiedNotRecomputed) {
  mf::EngineOptions o;
  o.parallel = 2;
  o.context = 128;
  mf::BatchEngine engine(*model_, *tok_, o);
  const std::string system = "you are a quiet river. ";
  auto gate = std::make_shared<FirstTokenGate>();
  auto first = submit(engine, greedy(*tok_, system + "hello", 20), nullptr, gate);
  gate->reached.get_future().wait();  // the first sequence holds its slot, decoding
  auto second = submit(engine, greedy(*tok_, system + "zebra", 8));
  gate->open.set_value();
  const Outcome b = second.get();
  EXPECT_EQ(b.result.cached_tokens, int(system.size()));
  EXPECT_EQ(b.result.finish_reason, "length");
  EXPECT_EQ(b.result.completion_tokens, 8);
  EXPECT_EQ(first.get().result.completion_tokens, 20);
  EXPECT_EQ(engine.stats().prefilled_tokens, int64_t(system.size() + 5 + 5));
}

TEST_P(BatchEngineTest, LogprobsAndRoutes) {
  mf::EngineOptions o;
  o.parallel = 2;
  o.context = 64;
  mf::BatchEngine engine(*model_, *tok_, o);
  mf::SequenceRequest r = greedy(*tok_, "abc", 4);
  r.top_logprobs = 3;
  r.routes = true;
  const Outcome out = submit(engine, r).get();
  ASSERT_EQ(out.events.size(), 4u);
  for (const auto& ev : out.events) {
    ASSERT_EQ(ev.top.size(), 3u);
    EXPECT_EQ(ev.top[0].token, ev.token);  // greedy picks the most likely
    EXPECT_FLOAT_EQ(ev.chosen.logprob, ev.top[0].logprob);
    EXPECT_LE(ev.top[0].logprob, 0.0f);
    EXPECT_GE(ev.top[0].logprob, ev.top[1].logprob);
    if (GetParam()) {
      ASSERT_EQ(ev.routes.size(), 2u);
      double sum = 0;
      for (const auto& [e, p] : ev.routes[0].experts) sum += p;
      EXPECT_NEAR(sum, 1.0, 1e-5);
      EXPECT_GE(ev.routes[0].experts[0].second, ev.routes[0].experts[1].second);
    } else {
      EXPECT_TRUE(ev.routes.empty());
    }
  }
}

TEST_P(BatchEngineTest, CancelFreesTheSlotAndTheQueueIsBounded) {
  mf::EngineOptions o;
  o.parallel = 1;
  o.context = 200;
  o.max_queue = 1;
  mf::BatchEngine engine(*model_, *tok_, o);
  std::shared_ptr<mf::SequenceTicket> ticket;
  auto gate = std::make_shared<FirstTokenGate>();
  auto long_run = submit(engine, greedy(*tok_, "abc", 150), &ticket, gate);
  gate->reached.get_future().wait();  // the slot is busy (and the engine held) from here on
  auto waiting = submit(engine, greedy(*tok_, "xyz", 3));
  // One slot busy and one waiting: a third is refused, never lost.
  bool refused = false;
  try {
    auto third = submit(engine, greedy(*tok_, "q", 3));
    (void)third;
  } catch (const mf::QueueFull&) {
    refused = true;
  }
  ticket->cancel();
  gate->open.set_value();
  const Outcome cancelled = long_run.get();
  EXPECT_EQ(cancelled.result.finish_reason, "cancelled");
  EXPECT_LT(cancelled.result.completion_tokens, 150);
  EXPECT_EQ(waiting.get().result.completion_tokens, 3);
  EXPECT_TRUE(refused);
  // A prompt that leaves no room to generate is refused up front.
  EXPECT_THROW(submit(engine, greedy(*tok_, std::string(200, 'a'), 3)), mf::Error);
  engine.drain();
  EXPECT_EQ(engine.stats().active, 0);
}

INSTANTIATE_TEST_SUITE_P(DenseAndMoe, BatchEngineTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Moe" : "Dense"; });

}  // namespace

// Continuous batching over one CPU Transformer: up to `parallel` sequences share one KV cache
// (a slot each) and advance together. Each engine step
//   1. admits queued sequences into free slots, preferring the slot whose cached tokens share the
//      longest prefix with the new prompt (a multi-turn chat's next turn reuses its last turn);
//      when another slot, busy or not, holds a longer start of the prompt (a system prompt every
//      request shares), its keys and values are copied rather than computed again,
//   2. runs ONE forward pass over the next token of every generating sequence plus whole prompt
//      chunks (at most `prefill_chunk` prompt tokens a step, the sequences least prefilled
//      first), so the weights are read once for both and a long prompt never stalls the others
//      for more than one chunk (for a MoE, all of the step's tokens are dispatched to the experts
//      together, so each expert's weights are read once per step),
//   3. samples, streams and retires each sequence on its own.
// A chunk joins the decode rows only while the forward stays within the model's
// batch_invariant_rows(), so every token is computed exactly as it would be alone; a chunk that
// would not fit runs as its own forward first.
// A finished or cancelled sequence frees its slot at once. The engine runs on its own thread;
// every callback of a sequence's sink runs on that thread.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "infer/sampling.h"
#include "model/kv_cache.h"
#include "model/transformer.h"
#include "tokenizer/tokenizer.h"

namespace mf {

// What one sequence asks for (tokens already rendered and encoded).
struct SequenceRequest {
  std::vector<int32_t> prompt;
  int max_tokens = 256;                 // >= 1; the engine also stops at the slot's context
  SamplingParams sampling;
  float frequency_penalty = 0.0f, presence_penalty = 0.0f;  // OpenAI's, over generated tokens
  std::vector<std::string> stop;        // stop strings (never emitted)
  std::vector<int32_t> eos_ids;         // end of sequence (never emitted)
  int top_logprobs = -1;                // -1: no log-probabilities; else the chosen one and the top n
  bool routes = false;                  // per token: each MoE layer's top experts
};

struct IdLogprob {
  int32_t token = 0;
  float logprob = 0.0f;
};

// One MoE layer's strongest experts for a token: (expert, router probability), best first.
struct LayerRoute {
  int layer = 0;
  std::vector<std::pair<int, float>> experts;
};

// One generated token, as the sink receives it.
struct TokenEvent {
  int32_t token = 0;
  std::string text;                     // text now safe to show (whole characters, stop strings held back)
  IdLogprob chosen;                  // when asked: log-probability of the token
  std::vector<IdLogprob> top;        // when asked: the top_logprobs most likely tokens
  std::vector<LayerRoute> routes;       // when asked (MoE): per MoE layer
};

struct SequenceResult {
  std::string finish_reason;            // "stop" (EOS or stop string), "length", "cancelled", "error"
  std::string error;                    // for "error"
  int prompt_tokens = 0, completion_tokens = 0;
  int cached_tokens = 0;                // prompt tokens reused from the slot's cache
  std::string trailing_text;            // text released at the end (held-back bytes), not yet in any event
};

// Callbacks for one sequence, called on the engine thread.
struct SequenceSink {
  std::function<void(const TokenEvent&)> on_token;
  std::function<void(const SequenceResult&)> on_finish;   // exactly once
};

// A queued or running sequence; cancel() from any thread (a client that went away).
class SequenceTicket {
 public:
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

 private:
  std::atomic<bool> cancelled_{false};
};

struct EngineOptions {
  int parallel = 4;                     // slots: sequences decoded together
  int context = 2048;                   // tokens per slot (prompt + completion)
  int prefill_chunk = 256;              // prompt tokens prefilled per step
  int max_queue = 64;                   // waiting sequences beyond the slots
  KVCacheTypes kv_cache;                // element types of the slots' KV cache
};

// Running totals since start, for /metrics and /health.
struct EngineStats {
  int64_t sequences_finished = 0, sequences_cancelled = 0, prompt_tokens = 0, prefilled_tokens = 0,
          generated_tokens = 0;
  int64_t decode_steps = 0;   // steps that decoded (some carried prompt chunks too)
  int64_t forward_passes = 0;  // every forward: decode steps, with or without chunks, and chunks run alone
  double decode_seconds = 0, prefill_seconds = 0;
  int queued = 0, active = 0, parallel = 0;
  // MoE: per MoE layer, how many (token, expert) selections each expert got (router top-k).
  std::vector<int> moe_layers;
  std::vector<std::vector<int64_t>> expert_load;
};

// Thrown by submit() when the queue is full (the server answers 503).
struct QueueFull : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class BatchEngine {
 public:
  // The model and tokenizer must outlive the engine.
  BatchEngine(Transformer& model, const Tokenizer& tokenizer, EngineOptions opts);
  ~BatchEngine();  // stops the thread; sequences still queued or running end "cancelled"
  BatchEngine(const BatchEngine&) = delete;
  BatchEngine& operator=(const BatchEngine&) = delete;

  // Queues a sequence. Throws QueueFull, or mf::Error for a prompt that does not fit a slot
  // (empty, or with no room for one generated token).
  std::shared_ptr<SequenceTicket> submit(SequenceRequest request, SequenceSink sink);

  // Stops admitting (submit throws QueueFull) and waits until every queued and running sequence
  // has finished.
  void drain();

  EngineStats stats() const;
  const EngineOptions& options() const { return opts_; }

 private:
  struct Pending;
  struct Slot;
  void run();
  void admit(std::unique_lock<std::mutex>& lock);
  // One prompt chunk of a step: the slot and how many of its prompt tokens.
  struct Chunk {
    Slot* slot;
    size_t tokens;
  };
  void step();
  // One forward over `decoding` (a token each) then `chunks`; samples and streams what it yields.
  void run_forward(const std::vector<Slot*>& decoding, const std::vector<Chunk>& chunks);
  // A sampled token and what its event carries; computed apart from the slot's stream so that a
  // step's rows can be sampled in parallel.
  struct Choice {
    TokenEvent event;
    bool eos = false;
  };
  Choice choose(Slot& s, std::span<const float> logits, const std::vector<Tensor>* router_logits, int64_t row);
  void emit(Slot& s, Choice c);
  void finish(Slot& s, const std::string& reason, const std::string& error = "");
  void count_routes(const std::vector<Tensor>& router_logits, int64_t rows);

  Transformer& model_;
  const Tokenizer& tok_;
  EngineOptions opts_;
  KVCache cache_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<int> moe_layers_;

  mutable std::mutex mutex_;
  std::condition_variable wake_, idle_;
  std::deque<std::unique_ptr<Pending>> queue_;
  bool stopping_ = false, draining_ = false;
  EngineStats stats_;
  std::thread thread_;
};

}  // namespace mf

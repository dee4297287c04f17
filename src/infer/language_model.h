// What generation needs from a model, and nothing more: append tokens to the model's KV
// cache and read the next-token logits. The Transformer adapter (bundle.h) implements it;
// tests implement it with scripted fakes, so generation and chat logic are testable alone.
#pragma once
#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace mf {

class Transformer;

// Routing probability a MoE spends on each expert, summed over the tokens it generated (decode
// steps, not the prompt) and over its MoE layers.
struct DecodeExpertShares {
  std::vector<std::string> experts;
  std::vector<double> prob_sum;  // [E]
  int64_t tokens = 0;
  void clear() {
    std::fill(prob_sum.begin(), prob_sum.end(), 0.0);
    tokens = 0;
  }
  // The n experts with the largest share, as (name, share of all routing probability).
  std::vector<std::pair<std::string, double>> top(size_t n) const;
};

class LanguageModel {
 public:
  virtual ~LanguageModel() = default;
  // Appends `tokens` at the current cache position (batched prefill when several) and
  // returns the logits [vocab] of the last one.
  virtual std::vector<float> forward(std::span<const int32_t> tokens) = 0;
  virtual int cache_length() const = 0;      // tokens currently in the cache
  virtual void truncate(int length) = 0;     // keeps the first `length` cached tokens
  virtual int context_length() const = 0;    // most tokens the cache can hold
  virtual int vocab_size() const = 0;
  // Starts (or, with null, stops) adding each decode step's routes to `tally`; models without
  // experts leave it untouched.
  virtual void observe_routes(DecodeExpertShares* tally) { (void)tally; }
  // The CPU Transformer behind the model, for callers that run their own KV cache over it (the
  // server's continuous batching); null for other devices and for test fakes.
  virtual Transformer* cpu_transformer() { return nullptr; }
};

}  // namespace mf

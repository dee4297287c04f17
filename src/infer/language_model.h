// What generation needs from a model, and nothing more: append tokens to the model's KV
// cache and read the next-token logits. The Transformer adapter (bundle.h) implements it;
// tests implement it with scripted fakes, so generation and chat logic are testable alone.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace mf {

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
};

}  // namespace mf

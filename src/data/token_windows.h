// Pretraining data as a token stream: a train/validation split and fixed-length windows (inputs
// and their next-token targets) sampled from it, reproducibly from a seed and resumable.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "core/rng.h"

namespace mf {

struct TokenSplit {
  std::vector<int32_t> train, valid;
};

// The last valid_fraction of the stream is the validation part (a contiguous tail, so no
// training window overlaps it). Throws mf::Error if either part would be empty.
TokenSplit split_tail(std::span<const int32_t> tokens, double valid_fraction);

// Uniformly random windows of seq_len + 1 tokens from a stream.
class WindowSampler {
 public:
  // Throws mf::Error if the stream is shorter than seq_len + 1 tokens.
  WindowSampler(std::span<const int32_t> tokens, int seq_len, uint64_t seed);
  // inputs, targets: [batch, seq_len]; targets are the inputs shifted by one.
  void next(int batch, std::vector<int32_t>& inputs, std::vector<int32_t>& targets);
  Rng::State state() const { return rng_.state(); }
  void set_state(const Rng::State& s) { rng_.set_state(s); }

 private:
  std::span<const int32_t> tokens_;
  int seq_len_;
  Rng rng_;
};

// Evaluation windows: consecutive non-overlapping windows from the start of the stream, at most
// max_windows of them, so every evaluation scores the same tokens. Each is [start, start+len+1).
std::vector<int64_t> eval_window_starts(std::span<const int32_t> tokens, int seq_len, int max_windows);

}  // namespace mf

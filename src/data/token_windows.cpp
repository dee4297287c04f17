#include "data/token_windows.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace mf {

TokenSplit split_tail(std::span<const int32_t> tokens, double valid_fraction) {
  MF_CHECK(valid_fraction > 0 && valid_fraction < 1, "split_tail: the validation fraction must be in (0, 1), got ",
           valid_fraction);
  const int64_t n = int64_t(tokens.size());
  const int64_t n_valid = int64_t(std::llround(double(n) * valid_fraction));
  MF_CHECK(n_valid > 0 && n_valid < n, "split_tail: ", n, " tokens cannot be split ", 1 - valid_fraction, " / ",
           valid_fraction);
  TokenSplit s;
  s.train.assign(tokens.begin(), tokens.end() - n_valid);
  s.valid.assign(tokens.end() - n_valid, tokens.end());
  return s;
}

WindowSampler::WindowSampler(std::span<const int32_t> tokens, int seq_len, uint64_t seed)
    : tokens_(tokens), seq_len_(seq_len), rng_(seed) {
  MF_CHECK(seq_len > 0 && int64_t(tokens.size()) > seq_len, "WindowSampler: ", tokens.size(),
           " tokens are too few for windows of ", seq_len, " + 1");
}

void WindowSampler::next(int batch, std::vector<int32_t>& inputs, std::vector<int32_t>& targets) {
  const size_t T = size_t(seq_len_);
  inputs.resize(size_t(batch) * T);
  targets.resize(size_t(batch) * T);
  const uint64_t starts = uint64_t(tokens_.size()) - T;  // a window needs T + 1 tokens
  for (int b = 0; b < batch; ++b) {
    const size_t s = size_t(rng_.below(starts));
    std::copy_n(tokens_.begin() + int64_t(s), T, inputs.begin() + int64_t(size_t(b) * T));
    std::copy_n(tokens_.begin() + int64_t(s) + 1, T, targets.begin() + int64_t(size_t(b) * T));
  }
}

std::vector<int64_t> eval_window_starts(std::span<const int32_t> tokens, int seq_len, int max_windows) {
  std::vector<int64_t> starts;
  for (int64_t s = 0; s + seq_len + 1 <= int64_t(tokens.size()) && int(starts.size()) < max_windows; s += seq_len)
    starts.push_back(s);
  return starts;
}

}  // namespace mf

#include "train/window_data.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace mf {

WindowData::WindowData(const TokenSplit& split, int batch, int seq_len, int eval_windows, uint64_t seed)
    : split_(split), batch_(batch), seq_len_(seq_len), sampler_(split.train, seq_len, seed) {
  MF_CHECK(batch > 0 && seq_len > 0, "training data: batch and seq_len must be positive");
  MF_CHECK(int64_t(split.valid.size()) > seq_len, "training data: the validation split (", split.valid.size(),
           " tokens) is shorter than one window of ", seq_len + 1);
  eval_starts_ = eval_window_starts(split.valid, seq_len, eval_windows);
}

void WindowData::next(Batch& out) {
  sampler_.next(batch_, out.tokens, out.targets);
  out.rows = batch_;
  out.cols = seq_len_;
  out.row_domain.clear();
  out.real_tokens = int64_t(batch_) * seq_len_;
}

size_t WindowData::eval_batches() const { return (eval_starts_.size() + size_t(batch_) - 1) / size_t(batch_); }

void WindowData::eval_batch(size_t i, Batch& out) const {
  const size_t first = i * size_t(batch_);
  const size_t rows = std::min(size_t(batch_), eval_starts_.size() - first);
  const size_t T = size_t(seq_len_);
  out.tokens.resize(rows * T);
  out.targets.resize(rows * T);
  for (size_t r = 0; r < rows; ++r) {
    const auto s = split_.valid.begin() + eval_starts_[first + r];
    std::copy_n(s, T, out.tokens.begin() + int64_t(r * T));
    std::copy_n(s + 1, T, out.targets.begin() + int64_t(r * T));
  }
  out.rows = int(rows);
  out.cols = seq_len_;
  out.row_domain.clear();
  out.real_tokens = int64_t(rows * T);
}

nlohmann::json rng_state_to_json(const Rng::State& s) {
  return {{"words", s.words}, {"has_spare", s.has_spare}, {"spare", s.spare}};
}

Rng::State rng_state_from_json(const nlohmann::json& j) {
  Rng::State s{};
  s.words = j.at("words").get<std::array<uint64_t, 4>>();
  s.has_spare = j.at("has_spare");
  s.spare = j.at("spare");
  return s;
}

std::string WindowData::state() const { return rng_state_to_json(sampler_.state()).dump(); }

void WindowData::set_state(const std::string& text) { sampler_.set_state(rng_state_from_json(nlohmann::json::parse(text))); }

}  // namespace mf

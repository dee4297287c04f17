// Pretraining batches: random fixed-length windows from the training stream, and the first
// non-overlapping windows of the validation stream for evaluation.
#pragma once
#include "data/token_windows.h"
#include "train/training_data.h"

namespace mf {

class WindowData : public TrainingData {
 public:
  // split must outlive this. Throws mf::Error if either part is shorter than one window.
  WindowData(const TokenSplit& split, int batch, int seq_len, int eval_windows, uint64_t seed);
  void next(Batch& out) override;
  size_t eval_batches() const override;
  void eval_batch(size_t i, Batch& out) const override;
  std::string state() const override;
  void set_state(const std::string& state) override;

 private:
  const TokenSplit& split_;
  int batch_, seq_len_;
  WindowSampler sampler_;
  std::vector<int64_t> eval_starts_;
};

}  // namespace mf

// Instruction-tuning batches without padding to a fixed maximum: each epoch shuffles the
// examples, sorts them by length within large chunks, cuts the chunks into micro-batches of
// similar lengths under a token budget (padding only up to the longest row of each batch),
// and shuffles the batch order. Padding sits after each sequence's end and carries no loss,
// and attention is causal, so it never changes what a real token sees.
#pragma once
#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "data/sft_tokenize.h"
#include "train/training_data.h"

namespace mf {

struct SftBatching {
  int max_rows = 8;          // sequences per micro-batch at most
  int64_t max_tokens = 8192; // rows x (longest row) at most
  int32_t pad_id = 0;        // token placed in padding (never scored, never attended by real tokens)
};

// How an epoch draws its training examples. Without weights: each example once, in the mix's own
// proportions. With weights (one per SftExamples::domains entry, >= 0): each draw picks a domain
// with probability proportional to its weight, then that domain's next example (the domain's
// examples shuffled, and again after each pass through them), as many draws as there are
// examples; a small domain is then seen several times per epoch and a large one in part.
struct SftSampling {
  std::vector<double> domain_weights;
};

class SftData : public TrainingData {
 public:
  // train and valid must outlive this; every sequence must fit max_tokens. eval_examples > 0
  // scores only that many validation examples (the first ones). Throws mf::Error if the weights
  // do not match train's domains or leave nothing to draw.
  SftData(const SftExamples& train, const SftExamples& valid, SftBatching batching, int eval_examples, uint64_t seed,
          SftSampling sampling = {});
  void next(Batch& out) override;
  size_t eval_batches() const override { return eval_plan_.size(); }
  void eval_batch(size_t i, Batch& out) const override;
  std::string state() const override;
  void set_state(const std::string& state) override;
  const std::vector<std::string>& domain_names() const override { return train_.domains; }
  int64_t epoch() const { return epoch_; }

  // Batches (lists of example indices) of similar lengths under the budget, in `order`.
  static std::vector<std::vector<uint32_t>> plan_batches(const SftExamples& ex, std::vector<uint32_t> order,
                                                         const SftBatching& b);
  static void fill(const SftExamples& ex, const std::vector<uint32_t>& rows, int32_t pad_id, Batch& out);

 private:
  void start_epoch();
  std::vector<uint32_t> weighted_order();

  const SftExamples& train_;
  const SftExamples& valid_;
  SftBatching batching_;
  SftSampling sampling_;
  Rng rng_;
  Rng::State epoch_start_{};
  int64_t epoch_ = 0;
  size_t position_ = 0;
  std::vector<std::vector<uint32_t>> plan_, eval_plan_;
};

}  // namespace mf

// Answer-token loss of a model on instruction examples, per domain: the number that says
// whether an expert beats the base model on its own domain.
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/sft_tokenize.h"
#include "model/trainable_transformer.h"
#include "train/sft_data.h"

namespace mf {

struct DomainLoss {
  std::string domain;          // "all" for the total row
  int64_t examples = 0;
  int64_t answer_tokens = 0;
  double loss_sum = 0;         // summed cross-entropy over answer tokens (nats)
  double loss() const { return answer_tokens ? loss_sum / double(answer_tokens) : 0.0; }
  double perplexity() const { return std::exp(loss()); }
};

// One row per domain (in ex.domains order, domains without examples left out), then "all".
// progress(done_tokens, total_tokens) is called after each batch when given.
std::vector<DomainLoss> evaluate_by_domain(TrainableTransformer& model, const SftExamples& ex, const SftBatching& batching,
                                           const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace mf

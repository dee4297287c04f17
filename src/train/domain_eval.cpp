#include "train/domain_eval.h"

namespace mf {

std::vector<DomainLoss> evaluate_by_domain(TrainableTransformer& model, const SftExamples& ex, const SftBatching& batching,
                                           const std::function<void(int64_t, int64_t)>& progress) {
  std::vector<std::vector<uint32_t>> by_domain(ex.domains.size());
  for (size_t i = 0; i < ex.size(); ++i) by_domain[size_t(ex.domain[i])].push_back(uint32_t(i));
  const int64_t total_tokens = int64_t(ex.tokens.size());
  int64_t done = 0;
  std::vector<DomainLoss> rows;
  DomainLoss all{"all"};
  Batch b;
  for (size_t d = 0; d < by_domain.size(); ++d) {
    if (by_domain[d].empty()) continue;
    DomainLoss row{ex.domains[d]};
    row.examples = int64_t(by_domain[d].size());
    // Batches of one domain, similar lengths together: little padding.
    for (const auto& batch : SftData::plan_batches(ex, by_domain[d], batching)) {
      SftData::fill(ex, batch, batching.pad_id, b);
      const TrainingLoss l = model.evaluate(b.tokens, b.targets, b.rows);
      row.loss_sum += l.lm_sum;
      row.answer_tokens += l.lm_tokens;
      done += b.real_tokens + int64_t(b.rows);
      if (progress) progress(done, total_tokens);
    }
    all.examples += row.examples;
    all.answer_tokens += row.answer_tokens;
    all.loss_sum += row.loss_sum;
    rows.push_back(std::move(row));
  }
  rows.push_back(all);
  return rows;
}

}  // namespace mf

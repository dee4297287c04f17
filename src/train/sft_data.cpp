#include "train/sft_data.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace mf {

namespace {

// Sorting by length within chunks this many batches long keeps batches tight while the
// order across chunks stays random.
constexpr size_t kChunkBatches = 32;

template <class T>
void shuffle(std::vector<T>& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[size_t(rng.below(i))]);
}

}  // namespace

SftData::SftData(const SftExamples& train, const SftExamples& valid, SftBatching batching, int eval_examples,
                 uint64_t seed, SftSampling sampling)
    : train_(train), valid_(valid), batching_(batching), sampling_(std::move(sampling)), rng_(seed) {
  MF_CHECK(batching_.max_rows > 0 && batching_.max_tokens > 1, "SFT batching: max_rows and max_tokens must be positive");
  MF_CHECK(train.size() > 0, "SFT: no training examples");
  MF_CHECK(valid.size() > 0, "SFT: no validation examples");
  MF_CHECK(valid.domains == train.domains || valid.domains.empty() || train.domains.empty(),
           "SFT: the validation and training examples name their domains differently");
  const std::vector<double>& w = sampling_.domain_weights;
  if (!w.empty()) {
    MF_CHECK(w.size() == train.domains.size(), "SFT sampling: ", w.size(), " domain weights for ",
             train.domains.size(), " domains");
    std::vector<int64_t> present(train.domains.size());
    for (int32_t d : train.domain) ++present[size_t(d)];
    double drawable = 0;
    for (size_t d = 0; d < w.size(); ++d) {
      MF_CHECK(std::isfinite(w[d]) && w[d] >= 0, "SFT sampling: the weight of ", train.domains[d], " is ", w[d],
               "; weights must be finite and >= 0");
      if (present[d] > 0) drawable += w[d];
    }
    MF_CHECK(drawable > 0, "SFT sampling: no domain with training examples has a positive weight");
  }
  for (const SftExamples* ex : {&train, &valid})
    for (size_t i = 0; i < ex->size(); ++i)
      MF_CHECK(ex->length(i) >= 2 && ex->length(i) <= batching_.max_tokens, "SFT: example ", i, " has ",
               ex->length(i), " tokens; each must have 2..", batching_.max_tokens, " (the batch token budget)");
  std::vector<uint32_t> eval_order(valid.size());
  std::iota(eval_order.begin(), eval_order.end(), 0u);
  if (eval_examples > 0 && size_t(eval_examples) < eval_order.size()) eval_order.resize(size_t(eval_examples));
  std::sort(eval_order.begin(), eval_order.end(),
            [&](uint32_t a, uint32_t b) { return valid.length(a) > valid.length(b) || (valid.length(a) == valid.length(b) && a < b); });
  // Sorted by length first: the fewest padded tokens for evaluation.
  eval_plan_ = plan_batches(valid, eval_order, batching_);
  start_epoch();
}

std::vector<std::vector<uint32_t>> SftData::plan_batches(const SftExamples& ex, std::vector<uint32_t> order,
                                                         const SftBatching& b) {
  std::vector<std::vector<uint32_t>> batches;
  const size_t chunk = kChunkBatches * size_t(b.max_rows);
  for (size_t begin = 0; begin < order.size(); begin += chunk) {
    const auto first = order.begin() + int64_t(begin);
    const auto last = order.begin() + int64_t(std::min(order.size(), begin + chunk));
    std::stable_sort(first, last, [&](uint32_t a, uint32_t c) { return ex.length(a) > ex.length(c); });
    std::vector<uint32_t> cur;
    int64_t longest = 0;
    for (auto it = first; it != last; ++it) {
      const int64_t len = ex.length(*it);
      const int64_t rows_if_added = int64_t(cur.size()) + 1;
      if (!cur.empty() && (rows_if_added > b.max_rows || rows_if_added * std::max(longest, len) > b.max_tokens)) {
        batches.push_back(std::move(cur));
        cur.clear();
        longest = 0;
      }
      cur.push_back(*it);
      longest = std::max(longest, len);
    }
    if (!cur.empty()) batches.push_back(std::move(cur));
  }
  return batches;
}

void SftData::fill(const SftExamples& ex, const std::vector<uint32_t>& rows, int32_t pad_id, Batch& out) {
  int64_t longest = 0;
  for (uint32_t i : rows) longest = std::max(longest, ex.length(i));
  const size_t cols = size_t(longest - 1);  // a sequence of L tokens gives L-1 predictions
  out.rows = int(rows.size());
  out.cols = int(cols);
  out.tokens.assign(rows.size() * cols, pad_id);
  out.targets.assign(rows.size() * cols, -1);
  out.real_tokens = 0;
  out.row_domain.resize(rows.size());
  for (size_t r = 0; r < rows.size(); ++r) {
    const auto seq = ex.sequence(rows[r]);
    const auto mask = ex.mask(rows[r]);
    const size_t n = seq.size() - 1;
    out.row_domain[r] = ex.domain[rows[r]];
    std::copy_n(seq.begin(), n, out.tokens.begin() + int64_t(r * cols));
    for (size_t t = 0; t < n; ++t)
      if (mask[t + 1]) out.targets[r * cols + t] = seq[t + 1];
    out.real_tokens += int64_t(n);
  }
}

void SftData::start_epoch() {
  epoch_start_ = rng_.state();
  std::vector<uint32_t> order;
  if (sampling_.domain_weights.empty()) {
    order.resize(train_.size());
    std::iota(order.begin(), order.end(), 0u);
    shuffle(order, rng_);
  } else {
    order = weighted_order();
  }
  plan_ = plan_batches(train_, std::move(order), batching_);
  shuffle(plan_, rng_);
  position_ = 0;
}

std::vector<uint32_t> SftData::weighted_order() {
  // Drawn from rng_ only, so replaying an epoch from its starting state (resume) draws the same.
  const size_t D = train_.domains.size();
  std::vector<std::vector<uint32_t>> members(D);
  for (size_t i = 0; i < train_.size(); ++i) members[size_t(train_.domain[i])].push_back(uint32_t(i));
  std::vector<double> cumulative(D);
  double total = 0;
  size_t last_drawable = 0;
  for (size_t d = 0; d < D; ++d) {
    if (!members[d].empty() && sampling_.domain_weights[d] > 0) {
      total += sampling_.domain_weights[d];
      last_drawable = d;
    }
    cumulative[d] = total;
    shuffle(members[d], rng_);
  }
  std::vector<size_t> next(D, 0);
  std::vector<uint32_t> order(train_.size());
  for (uint32_t& pick : order) {
    const double u = rng_.uniform_double() * total;
    // The first domain whose cumulative weight exceeds u: never one without weight or examples
    // (its cumulative equals the one before); u rounded up to total means the last drawable one.
    size_t d = size_t(std::upper_bound(cumulative.begin(), cumulative.end(), u) - cumulative.begin());
    if (d == D) d = last_drawable;
    if (next[d] == members[d].size()) {
      shuffle(members[d], rng_);
      next[d] = 0;
    }
    pick = members[d][next[d]++];
  }
  return order;
}

void SftData::next(Batch& out) {
  if (position_ == plan_.size()) {
    ++epoch_;
    start_epoch();
  }
  fill(train_, plan_[position_++], batching_.pad_id, out);
}

void SftData::eval_batch(size_t i, Batch& out) const { fill(valid_, eval_plan_[i], batching_.pad_id, out); }

std::string SftData::state() const {
  return nlohmann::json{{"epoch", epoch_}, {"position", position_}, {"rng", rng_state_to_json(epoch_start_)}}.dump();
}

void SftData::set_state(const std::string& text) {
  const auto j = nlohmann::json::parse(text);
  // Replaying the epoch's shuffle from its starting state rebuilds the same plan.
  rng_.set_state(rng_state_from_json(j.at("rng")));
  start_epoch();
  epoch_ = j.at("epoch");
  position_ = j.at("position");
  MF_CHECK(position_ <= plan_.size(), "SFT data state: position ", position_, " beyond the epoch's ", plan_.size(),
           " batches (was the checkpoint made with other data?)");
}

}  // namespace mf

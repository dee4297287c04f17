#include "infer/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>

#include "core/error.h"

namespace mf {

void SamplingParams::validate() const {
  MF_CHECK(std::isfinite(temperature) && temperature >= 0, "sampling: temperature must be >= 0, got ", temperature);
  MF_CHECK(top_k >= 0, "sampling: top_k must be >= 0, got ", top_k);
  MF_CHECK(top_p > 0 && top_p <= 1, "sampling: top_p must be in (0, 1], got ", top_p);
  MF_CHECK(min_p >= 0 && min_p <= 1, "sampling: min_p must be in [0, 1], got ", min_p);
  MF_CHECK(std::isfinite(repeat_penalty) && repeat_penalty > 0, "sampling: repeat_penalty must be > 0, got ",
           repeat_penalty);
  MF_CHECK(repeat_last_n >= 0, "sampling: repeat_last_n must be >= 0, got ", repeat_last_n);
}

void apply_repetition_penalty(std::span<float> logits, std::span<const int32_t> seen, float penalty) {
  if (penalty == 1.0f) return;
  std::vector<bool> done(logits.size(), false);
  for (int32_t id : seen) {
    if (id < 0 || size_t(id) >= logits.size() || done[size_t(id)]) continue;
    done[size_t(id)] = true;
    float& l = logits[size_t(id)];
    l = l > 0 ? l / penalty : l * penalty;
  }
}

void apply_frequency_presence_penalties(std::span<float> logits, std::span<const int32_t> generated, float frequency,
                                        float presence) {
  if ((frequency == 0.0f && presence == 0.0f) || generated.empty()) return;
  // Counted in a map: a reply has far fewer distinct tokens than the vocabulary has entries.
  std::unordered_map<int32_t, int> count;
  for (int32_t id : generated)
    if (id >= 0 && size_t(id) < logits.size()) ++count[id];
  for (const auto& [id, n] : count) logits[size_t(id)] -= float(n) * frequency + presence;
}

Sampler::Sampler(SamplingParams params) : params_(params), rng_(params.seed) { params_.validate(); }

std::vector<std::pair<int32_t, double>> Sampler::distribution(std::span<const float> logits,
                                                              std::span<const int32_t> history) const {
  MF_CHECK(!logits.empty(), "sampling: empty logits");
  std::vector<float> l(logits.begin(), logits.end());
  if (params_.repeat_last_n > 0 && history.size() > size_t(params_.repeat_last_n))
    history = history.subspan(history.size() - size_t(params_.repeat_last_n));
  apply_repetition_penalty(l, history, params_.repeat_penalty);

  if (params_.temperature == 0) {
    size_t best = 0;
    for (size_t i = 1; i < l.size(); ++i)
      if (l[i] > l[best]) best = i;  // NaN never wins; first maximum on ties
    return {{int32_t(best), 1.0}};
  }

  // Candidates sorted by logit, descending (ties: lower id first, deterministic).
  std::vector<int32_t> order(l.size());
  std::iota(order.begin(), order.end(), 0);
  size_t keep = l.size();
  if (params_.top_k > 0) keep = std::min(keep, size_t(params_.top_k));
  auto by_logit = [&](int32_t a, int32_t b) { return l[size_t(a)] > l[size_t(b)] || (l[size_t(a)] == l[size_t(b)] && a < b); };
  if (keep < order.size()) {
    std::partial_sort(order.begin(), order.begin() + std::ptrdiff_t(keep), order.end(), by_logit);
    order.resize(keep);
  } else {
    std::sort(order.begin(), order.end(), by_logit);
  }
  // Drop -inf/NaN (masked) logits, but always keep the best one.
  while (order.size() > 1 && !std::isfinite(l[size_t(order.back())])) order.pop_back();

  const double inv_t = 1.0 / params_.temperature;
  const double top = double(l[size_t(order[0])]) * inv_t;
  std::vector<double> p(order.size());
  double sum = 0;
  for (size_t i = 0; i < order.size(); ++i) sum += p[i] = std::exp(double(l[size_t(order[i])]) * inv_t - top);
  for (double& x : p) x /= sum;

  if (params_.top_p < 1.0f) {  // smallest prefix whose mass reaches top_p
    double cum = 0;
    size_t n = 0;
    while (n < p.size()) {
      cum += p[n++];
      if (cum >= double(params_.top_p)) break;
    }
    p.resize(n);
    order.resize(n);
  }
  if (params_.min_p > 0) {
    const double floor = double(params_.min_p) * p[0];
    size_t n = 1;
    while (n < p.size() && p[n] >= floor) ++n;
    p.resize(n);
    order.resize(n);
  }
  double kept = std::accumulate(p.begin(), p.end(), 0.0);
  std::vector<std::pair<int32_t, double>> out(order.size());
  for (size_t i = 0; i < order.size(); ++i) out[i] = {order[i], p[i] / kept};
  return out;
}

namespace {

// The draw of distribution() + sample() when no filter cuts the candidates (no top-k, top-p or
// min-p), without sorting the whole vocabulary: the total mass comes from one pass in id order,
// then candidates are visited from the most likely down (the same order and tie rule as the full
// sort) in growing partially sorted prefixes until the cumulative mass passes u. A 49k-token
// vocabulary's full sort took ~5 ms per token; the draw almost always ends in the first few dozen.
int32_t draw_unfiltered(std::span<const float> l, double inv_t, Rng& rng) {
  float best = -std::numeric_limits<float>::infinity();
  int32_t best_id = 0;
  size_t finite = 0;
  for (size_t i = 0; i < l.size(); ++i) {
    if (std::isfinite(l[i])) ++finite;
    if (l[i] > best) best = l[i], best_id = int32_t(i);
  }
  // One candidate: returned without a draw, as distribution() + sample() do.
  if (finite <= 1) return best_id;
  const double top = double(best) * inv_t;
  double sum = 0;
  for (float v : l)
    if (std::isfinite(v)) sum += std::exp(double(v) * inv_t - top);
  const double target = rng.uniform_double() * sum;
  std::vector<int32_t> order(l.size());
  std::iota(order.begin(), order.end(), 0);
  auto by_logit = [&](int32_t a, int32_t b) { return l[size_t(a)] > l[size_t(b)] || (l[size_t(a)] == l[size_t(b)] && a < b); };
  double cum = 0;
  size_t done = 0, last_finite = 0;
  for (size_t prefix = 64; done < order.size(); prefix *= 8) {
    const size_t end = std::min(prefix, order.size());
    std::partial_sort(order.begin() + std::ptrdiff_t(done), order.begin() + std::ptrdiff_t(end), order.end(), by_logit);
    for (; done < end; ++done) {
      const float v = l[size_t(order[done])];
      if (!std::isfinite(v)) return order[last_finite];
      last_finite = done;
      cum += std::exp(double(v) * inv_t - top);
      if (target < cum) return order[done];
    }
  }
  return order[last_finite];  // rounding left u above the last cumulative sum
}

}  // namespace

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  const bool unfiltered = params_.temperature > 0 && params_.top_k == 0 && params_.top_p >= 1.0f && params_.min_p <= 0;
  if (unfiltered && !logits.empty()) {
    std::vector<float> l(logits.begin(), logits.end());
    if (params_.repeat_last_n > 0 && history.size() > size_t(params_.repeat_last_n))
      history = history.subspan(history.size() - size_t(params_.repeat_last_n));
    apply_repetition_penalty(l, history, params_.repeat_penalty);
    return draw_unfiltered(l, 1.0 / params_.temperature, rng_);
  }
  auto dist = distribution(logits, history);
  if (dist.size() == 1) return dist[0].first;
  double u = rng_.uniform_double(), cum = 0;
  for (const auto& [id, prob] : dist) {
    cum += prob;
    if (u < cum) return id;
  }
  return dist.back().first;  // rounding left u above the last cumulative sum
}

}  // namespace mf

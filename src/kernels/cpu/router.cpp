#include "kernels/cpu/router.h"

#include <cmath>
#include <algorithm>
#include <limits>
#include <vector>

#include "core/error.h"

namespace mf {

namespace {

void route_token(const float* logits, int E, int k, bool renormalize, int32_t* idx, float* weight) {
  float max = -std::numeric_limits<float>::infinity();
  for (int e = 0; e < E; ++e) max = std::max(max, logits[e]);
  float sum = 0.0f;
  for (int e = 0; e < E; ++e) sum += std::exp(logits[e] - max);
  // Selection by repeated arg-max over at most a few dozen experts: k*E compares beat a sort,
  // and scanning upwards with a strict '>' gives the lower index on ties.
  uint64_t taken_small = 0;  // bit e set once expert e is chosen (E <= 64 fast path)
  std::vector<bool> taken_large;
  if (E > 64) taken_large.assign(size_t(E), false);
  auto taken = [&](int e) { return E <= 64 ? (taken_small >> e & 1u) != 0 : taken_large[size_t(e)]; };
  float kept = 0.0f;
  for (int j = 0; j < k; ++j) {
    int best = -1;
    for (int e = 0; e < E; ++e)
      if (!taken(e) && (best < 0 || logits[e] > logits[best])) best = e;
    if (E <= 64)
      taken_small |= uint64_t(1) << best;
    else
      taken_large[size_t(best)] = true;
    idx[j] = best;
    weight[j] = std::exp(logits[best] - max) / sum;
    kept += weight[j];
  }
  if (renormalize)
    for (int j = 0; j < k; ++j) weight[j] /= kept;
}

}  // namespace

void router_topk_softmax(const float* logits, int64_t T, int E, int k, bool renormalize,
                         int32_t* idx, float* weight) {
  MF_CHECK(T >= 0, "router_topk_softmax: negative token count ", T);
  MF_CHECK(E > 0 && k > 0 && k <= E, "router_topk_softmax: need 0 < k <= E, got k=", k, " E=", E);
  for (int64_t t = 0; t < T; ++t)
    for (int e = 0; e < E; ++e)
      MF_CHECK(!std::isnan(logits[t * E + e]), "router_topk_softmax: NaN logit for token ", t,
               " expert ", e);
#pragma omp parallel for schedule(static) if (T * E >= 4096)
  for (int64_t t = 0; t < T; ++t)
    route_token(logits + t * E, E, k, renormalize, idx + t * k, weight + t * k);
}

namespace {

// p = softmax(row) in double (E is small), returns logsumexp(row).
double softmax_into(const float* row, int E, double* p) {
  double mx = row[0];
  for (int e = 1; e < E; ++e) mx = std::max(mx, double(row[e]));
  double sum = 0;
  for (int e = 0; e < E; ++e) sum += (p[e] = std::exp(double(row[e]) - mx));
  for (int e = 0; e < E; ++e) p[e] /= sum;
  return mx + std::log(sum);
}

// dlogits += softmax backward of dp at probabilities p: p * (dp - sum(dp * p)).
void add_softmax_backward(const double* p, const double* dp, int E, float* dlogits) {
  double dot = 0;
  for (int e = 0; e < E; ++e) dot += dp[e] * p[e];
  for (int e = 0; e < E; ++e) dlogits[e] += float(p[e] * (dp[e] - dot));
}

}  // namespace

void router_topk_softmax_backward(const float* logits, const int32_t* idx, const float* dweight, int64_t T, int E,
                                  int k, bool renormalize, float* dlogits) {
  MF_CHECK(T >= 0 && E > 0 && k > 0 && k <= E, "router_topk_softmax_backward: need 0 < k <= E, got k=", k, " E=", E);
#pragma omp parallel for schedule(static) if (T * E >= 4096)
  for (int64_t t = 0; t < T; ++t) {
    thread_local std::vector<double> scratch;  // each thread its own, reused across rows and calls
    scratch.assign(2 * size_t(E), 0.0);
    double* p = scratch.data();
    double* dp = p + E;
    softmax_into(logits + t * E, E, p);
    const int32_t* it = idx + t * k;
    const float* dw = dweight + t * k;
    if (renormalize) {
      // w_j = p_j / S with S = sum of the kept p: dp_j = (dw_j - sum_l dw_l w_l) / S.
      double kept = 0, dw_dot_w = 0;
      for (int j = 0; j < k; ++j) kept += p[it[j]];
      for (int j = 0; j < k; ++j) dw_dot_w += double(dw[j]) * p[it[j]] / kept;
      for (int j = 0; j < k; ++j) dp[it[j]] = (double(dw[j]) - dw_dot_w) / kept;
    } else {
      for (int j = 0; j < k; ++j) dp[it[j]] = dw[j];
    }
    add_softmax_backward(p, dp, E, dlogits + t * E);
  }
}

double load_balancing_loss(const float* logits, const int32_t* idx, const uint8_t* mask, int64_t T, int E, int k,
                           float coef, float* dlogits) {
  MF_CHECK(T >= 0 && E > 0 && k > 0 && k <= E, "load_balancing_loss: need 0 < k <= E, got k=", k, " E=", E);
  std::vector<double> mean_p(static_cast<size_t>(E), 0.0), routed(static_cast<size_t>(E), 0.0), p(static_cast<size_t>(E));
  int64_t rows = 0;
  for (int64_t t = 0; t < T; ++t) {
    if (mask && !mask[t]) continue;
    ++rows;
    softmax_into(logits + t * E, E, p.data());
    for (int e = 0; e < E; ++e) mean_p[size_t(e)] += p[size_t(e)];
    for (int j = 0; j < k; ++j) {
      const int32_t e = idx[t * k + j];
      MF_CHECK(e >= 0 && e < E, "load_balancing_loss: expert index ", e, " of token ", t, " is outside [0, ", E, ")");
      routed[size_t(e)] += 1.0;
    }
  }
  if (rows == 0) return 0.0;
  double loss = 0;
  for (int e = 0; e < E; ++e) loss += (routed[size_t(e)] / double(rows)) * (mean_p[size_t(e)] / double(rows));
  loss *= E;
  if (dlogits) {
    // d loss / d p_{t,e} = E * f_e / rows for every counted row t.
    std::vector<double> dp(static_cast<size_t>(E));
    for (int e = 0; e < E; ++e) dp[size_t(e)] = double(coef) * E * (routed[size_t(e)] / double(rows)) / double(rows);
    for (int64_t t = 0; t < T; ++t) {
      if (mask && !mask[t]) continue;
      softmax_into(logits + t * E, E, p.data());
      add_softmax_backward(p.data(), dp.data(), E, dlogits + t * E);
    }
  }
  return loss;
}

double router_z_loss(const float* logits, const uint8_t* mask, int64_t T, int E, float coef, float* dlogits) {
  MF_CHECK(T >= 0 && E > 0, "router_z_loss: bad shape [", T, ", ", E, "]");
  int64_t rows = 0;
  for (int64_t t = 0; t < T; ++t) rows += (!mask || mask[t]) ? 1 : 0;
  if (rows == 0) return 0.0;
  std::vector<double> p(static_cast<size_t>(E));
  double loss = 0;
  for (int64_t t = 0; t < T; ++t) {
    if (mask && !mask[t]) continue;
    const double lse = softmax_into(logits + t * E, E, p.data());
    loss += lse * lse;
    // d lse^2 / d logits = 2 * lse * softmax
    if (dlogits)
      for (int e = 0; e < E; ++e) dlogits[t * E + e] += float(double(coef) * 2.0 * lse * p[size_t(e)] / double(rows));
  }
  return loss / double(rows);
}

}  // namespace mf

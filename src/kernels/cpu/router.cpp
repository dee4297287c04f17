#include "kernels/cpu/router.h"

#include <cmath>
#include <algorithm>
#include <limits>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/softmax.h"

namespace mf {

double load_balancing_loss(const float* logits, const int32_t* idx, const uint8_t* mask, int64_t N, int E, int k,
                           float coef, float* dlogits) {
  MF_CHECK(N >= 0 && E > 0 && k > 0 && k <= E, "load_balancing_loss: need 0 < k <= E, got k=", k, " E=", E);
  std::vector<double> mean_p(static_cast<size_t>(E), 0.0), routed(static_cast<size_t>(E), 0.0), p(static_cast<size_t>(E));
  int64_t rows = 0;
  for (int64_t t = 0; t < N; ++t) {
    if (mask && !mask[t]) continue;
    ++rows;
    softmax_row_f64(logits + t * E, E, p.data());
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
    for (int64_t t = 0; t < N; ++t) {
      if (mask && !mask[t]) continue;
      softmax_row_f64(logits + t * E, E, p.data());
      softmax_row_f64_backward(p.data(), dp.data(), E, dlogits + t * E);
    }
  }
  return loss;
}

double router_z_loss(const float* logits, const uint8_t* mask, int64_t N, int E, float coef, float* dlogits) {
  MF_CHECK(N >= 0 && E > 0, "router_z_loss: bad shape [", N, ", ", E, "]");
  int64_t rows = 0;
  for (int64_t t = 0; t < N; ++t) rows += (!mask || mask[t]) ? 1 : 0;
  if (rows == 0) return 0.0;
  std::vector<double> p(static_cast<size_t>(E));
  double loss = 0;
  for (int64_t t = 0; t < N; ++t) {
    if (mask && !mask[t]) continue;
    const double lse = softmax_row_f64(logits + t * E, E, p.data());
    loss += lse * lse;
    // d lse^2 / d logits = 2 * lse * softmax
    if (dlogits)
      for (int e = 0; e < E; ++e) dlogits[t * E + e] += float(double(coef) * 2.0 * lse * p[size_t(e)] / double(rows));
  }
  return loss / double(rows);
}

double domain_routing_loss(const float* logits, const int32_t* target, int64_t N, int E, int64_t T, float coef,
                           float* dlogits, bool per_token) {
  MF_CHECK(N >= 0 && E > 0 && T > 0 && N % T == 0, "domain_routing_loss: bad shape [", N, ", ", E, "] in sequences of ",
           T);
  std::vector<double> p(static_cast<size_t>(E));
  if (per_token) {
    int64_t rows = 0;
    for (int64_t t = 0; t < N; ++t) rows += target[t] >= 0 ? 1 : 0;
    if (rows == 0) return 0.0;
    double loss = 0;
    for (int64_t t = 0; t < N; ++t) {
      const int32_t e = target[t];
      if (e < 0) continue;
      MF_CHECK(e < E, "domain_routing_loss: target expert ", e, " of row ", t, " is not one of ", E);
      softmax_row_f64(logits + t * E, E, p.data());
      loss += -std::log(std::max(p[size_t(e)], 1e-30));
      // Cross-entropy: d/dz_j = p_j - [j == e], averaged over the target rows.
      if (dlogits)
        for (int j = 0; j < E; ++j)
          dlogits[t * E + j] += float(double(coef) * (p[size_t(j)] - (j == e ? 1.0 : 0.0)) / double(rows));
    }
    return loss / double(rows);
  }
  // Per sequence and expert: the summed probability of the expert over the segment's rows, and
  // the segment's row count.
  std::vector<double> mass(static_cast<size_t>(E));
  std::vector<int64_t> rows(static_cast<size_t>(E));
  struct Segment {
    int64_t seq;
    int expert;
    double mass;
    int64_t rows;
  };
  std::vector<Segment> segments;
  for (int64_t s0 = 0; s0 < N; s0 += T) {
    std::fill(mass.begin(), mass.end(), 0.0);
    std::fill(rows.begin(), rows.end(), 0);
    for (int64_t t = s0; t < s0 + T; ++t) {
      const int32_t e = target[t];
      if (e < 0) continue;
      MF_CHECK(e < E, "domain_routing_loss: target expert ", e, " of row ", t, " is not one of ", E);
      softmax_row_f64(logits + t * E, E, p.data());
      mass[size_t(e)] += p[size_t(e)];
      ++rows[size_t(e)];
    }
    for (int e = 0; e < E; ++e)
      if (rows[size_t(e)] > 0) segments.push_back({s0 / T, e, mass[size_t(e)], rows[size_t(e)]});
  }
  if (segments.empty()) return 0.0;
  const double inv_segments = 1.0 / double(segments.size());
  double loss = 0;
  for (const Segment& s : segments) {
    loss += -std::log(std::max(s.mass / double(s.rows), 1e-30));
    if (!dlogits) continue;
    // L = -log(S / n) with S = sum_t p_t[e]: dL/dp_t[e] = -1 / S, and through the softmax
    // dL/dz_t[j] = -(p_t[e] / S) * (delta_je - p_t[j]).
    const double scale = double(coef) * inv_segments / std::max(s.mass, 1e-30);
    for (int64_t t = s.seq * T; t < (s.seq + 1) * T; ++t) {
      if (target[t] != s.expert) continue;
      softmax_row_f64(logits + t * E, E, p.data());
      const double pe = p[size_t(s.expert)];
      for (int j = 0; j < E; ++j)
        dlogits[t * E + j] += float(-scale * pe * ((j == s.expert ? 1.0 : 0.0) - p[size_t(j)]));
    }
  }
  return loss * inv_segments;
}

}  // namespace mf

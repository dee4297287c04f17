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

}  // namespace mf

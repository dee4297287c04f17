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

}  // namespace mf

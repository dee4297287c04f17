// The reference routing: softmax in double, top-k by a plain scan with ties to the lower index,
// then capacity applied slot-major once every token has chosen (GShard / Switch priority). The
// CUDA router and dispatch plan reproduce these choices index for index.
#include "moe/routing.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/work_pool.h"
#include "kernels/cpu/softmax.h"

namespace mf {
namespace {

// The k largest scores, best first; ties to the lower index (strict '>' scanning upwards).
void top_k(const double* score, int E, int k, int32_t* out) {
  for (int j = 0; j < k; ++j) {
    int best = -1;
    for (int e = 0; e < E; ++e) {
      bool taken = false;
      for (int i = 0; i < j; ++i) taken |= out[i] == e;
      if (!taken && (best < 0 || score[e] > score[best])) best = e;
    }
    out[j] = best;
  }
}

bool softmax_gated(RouterPolicy p) { return p == RouterPolicy::SoftmaxTopK || p == RouterPolicy::Switch; }

// n assignments, all kept until capacity says otherwise.
void resize_assignments(Routing& r, int64_t n) {
  r.token.resize(size_t(n));
  r.expert.resize(size_t(n));
  r.gate.resize(size_t(n));
  r.kept.assign(size_t(n), 1);
}

void route_token_choice(const float* logits, int64_t N, int E, const RouteOptions& o, Routing& r) {
  const int k = o.policy == RouterPolicy::Switch ? 1 : o.top_k;
  r.slots = k;
  resize_assignments(r, N * k);
  parallel_ranges(N, std::max<int64_t>(1, 4096 / E), [&](int64_t begin, int64_t end) {
    // Scratch for a piece of tokens, allocated once per piece rather than per token.
    std::vector<double> p(static_cast<size_t>(E)), score(static_cast<size_t>(E)), g(static_cast<size_t>(k));
    std::vector<float> sel(static_cast<size_t>(k));
    for (int64_t t = begin; t < end; ++t) {
      const float* z = logits + t * E;
      softmax_row_f64(z, E, p.data());
      for (int e = 0; e < E; ++e) {
        r.probs[size_t(t * E + e)] = float(p[size_t(e)]);
        score[size_t(e)] = softmax_gated(o.policy) ? p[size_t(e)] : double(z[e]);
        if (o.selection_bias) score[size_t(e)] += double(o.selection_bias[e]);
      }
      int32_t* idx = r.expert.data() + t * k;
      top_k(score.data(), E, k, idx);
      float* gate = r.gate.data() + t * k;
      for (int s = 0; s < k; ++s) r.token[size_t(t * k + s)] = int32_t(t);
      if (softmax_gated(o.policy)) {
        double kept = 0;
        for (int s = 0; s < k; ++s) kept += p[size_t(idx[s])];
        const bool renorm = o.policy == RouterPolicy::SoftmaxTopK && o.renormalize;
        for (int s = 0; s < k; ++s) gate[s] = float(renorm ? p[size_t(idx[s])] / kept : p[size_t(idx[s])]);
      } else {  // softmax over the k selected logits
        for (int s = 0; s < k; ++s) sel[size_t(s)] = z[idx[s]];
        softmax_row_f64(sel.data(), k, g.data());
        for (int s = 0; s < k; ++s) gate[s] = float(g[size_t(s)]);
      }
    }
  });
  r.capacity = expert_capacity(o, N, E);
  r.dropped = 0;
  if (r.capacity == 0) return;
  // Slot-major priority (GShard / Switch): every token's first choice is placed before any
  // second choice, and within a slot earlier tokens first.
  std::vector<int64_t> used(static_cast<size_t>(E), 0);
  for (int s = 0; s < k; ++s)
    for (int64_t t = 0; t < N; ++t) {
      const size_t a = size_t(t * k + s);
      if (used[size_t(r.expert[a])] < r.capacity) {
        ++used[size_t(r.expert[a])];
      } else {
        r.kept[a] = 0;
        ++r.dropped;
      }
    }
}

void route_expert_choice(int64_t N, int E, const RouteOptions& o, Routing& r) {
  const int64_t C = expert_capacity(o, N, E);
  r.capacity = C;
  r.slots = int(C);
  r.dropped = 0;
  resize_assignments(r, E * C);
  auto choose = [&](int64_t expert, int) {
    const int e = int(expert);
    std::vector<int32_t> order(static_cast<size_t>(N));
    std::iota(order.begin(), order.end(), 0);
    const float* p = r.probs.data();
    std::partial_sort(order.begin(), order.begin() + C, order.end(), [&](int32_t a, int32_t b) {
      const float pa = p[size_t(a) * size_t(E) + size_t(e)], pb = p[size_t(b) * size_t(E) + size_t(e)];
      return pa > pb || (pa == pb && a < b);
    });
    for (int64_t j = 0; j < C; ++j) {
      const size_t a = size_t(e * C + j);
      r.token[a] = order[size_t(j)];
      r.expert[a] = e;
      r.gate[a] = p[size_t(order[size_t(j)]) * size_t(E) + size_t(e)];
    }
  };
  if (N * E < 4096) {
    for (int e = 0; e < E; ++e) choose(e, 0);
  } else {
    parallel_chunks(E, choose);
  }
}

}  // namespace

RouteOptions route_options(const RoutingConfig& c, int top_k, bool training, const float* selection_bias) {
  RouteOptions o;
  o.policy = c.policy;
  o.top_k = top_k;
  o.renormalize = c.norm_topk_prob;
  o.capacity_factor = c.capacity_for(training);
  o.min_capacity = c.min_capacity;
  o.selection_bias = selection_bias;
  return o;
}

int64_t expert_capacity(const RouteOptions& o, int64_t N, int E) {
  if (o.policy == RouterPolicy::ExpertChoice) {
    const double factor = o.capacity_factor > 0 ? o.capacity_factor : double(o.top_k);
    const int64_t c = std::max<int64_t>(o.min_capacity, int64_t(std::ceil(factor * double(N) / double(E))));
    return std::clamp<int64_t>(c, N > 0 ? 1 : 0, N);
  }
  if (o.capacity_factor <= 0) return 0;
  const int k = o.policy == RouterPolicy::Switch ? 1 : o.top_k;
  return std::max<int64_t>({1, o.min_capacity, int64_t(std::ceil(o.capacity_factor * double(N * k) / double(E)))});
}

int64_t Routing::unrouted_tokens() const {
  std::vector<uint8_t> reached(static_cast<size_t>(tokens), 0);
  for (size_t a = 0; a < token.size(); ++a)
    if (kept[a]) reached[size_t(token[a])] = 1;
  return tokens - std::accumulate(reached.begin(), reached.end(), int64_t(0));
}

std::vector<int64_t> Routing::load() const {
  std::vector<int64_t> n(static_cast<size_t>(experts), 0);
  for (size_t a = 0; a < expert.size(); ++a)
    if (kept[a]) ++n[size_t(expert[a])];
  return n;
}

void route(const float* logits, int64_t N, int E, const RouteOptions& o, Routing& r) {
  MF_CHECK(N >= 0 && E > 0, "route: need tokens >= 0 and experts > 0, got ", N, " and ", E);
  MF_CHECK(o.policy == RouterPolicy::ExpertChoice || (o.top_k >= 1 && o.top_k <= E), "route: top_k ", o.top_k,
           " is not in [1, ", E, "]");
  for (int64_t i = 0; i < N * E; ++i)
    MF_CHECK(!std::isnan(logits[i]), "route: NaN router logit for token ", i / E, " expert ", i % E);
  r.tokens = N;
  r.experts = E;
  r.expert_choice = o.policy == RouterPolicy::ExpertChoice;
  r.probs.resize(size_t(N * E));
  if (r.expert_choice) {
    std::vector<double> p(static_cast<size_t>(E));
    for (int64_t t = 0; t < N; ++t) {
      softmax_row_f64(logits + t * E, E, p.data());
      for (int e = 0; e < E; ++e) r.probs[size_t(t * E + e)] = float(p[size_t(e)]);
    }
    route_expert_choice(N, E, o, r);
  } else {
    route_token_choice(logits, N, E, o, r);
  }
}

void route_backward(const float* logits, const Routing& r, const RouteOptions& o, const float* dgate, float* dlogits) {
  const int64_t N = r.tokens;
  const int E = r.experts;
  auto live = [&](size_t a) { return r.kept[a] ? double(dgate[a]) : 0.0; };
  if (!r.expert_choice && !softmax_gated(o.policy)) {
    // Softmax over the k selected logits: dz_j = g_j (dg_j - sum_s g_s dg_s).
    const int k = r.slots;
    for (int64_t t = 0; t < N; ++t) {
      double dot = 0;
      for (int s = 0; s < k; ++s) dot += double(r.gate[size_t(t * k + s)]) * live(size_t(t * k + s));
      for (int s = 0; s < k; ++s) {
        const size_t a = size_t(t * k + s);
        dlogits[t * E + r.expert[a]] += float(double(r.gate[a]) * (live(a) - dot));
      }
    }
    return;
  }
  // Gates read from p = softmax(z): accumulate dp, then dz = p (dp - sum(p dp)).
  std::vector<double> dp(static_cast<size_t>(N * E), 0.0);
  if (r.expert_choice) {
    for (size_t a = 0; a < r.token.size(); ++a) dp[size_t(r.token[a]) * size_t(E) + size_t(r.expert[a])] += live(a);
  } else {
    const int k = r.slots;
    const bool renorm = o.policy == RouterPolicy::SoftmaxTopK && o.renormalize;
    for (int64_t t = 0; t < N; ++t) {
      const float* p = r.probs.data() + t * E;
      if (!renorm) {
        for (int s = 0; s < k; ++s) dp[size_t(t * E + r.expert[size_t(t * k + s)])] += live(size_t(t * k + s));
        continue;
      }
      // g_s = p_s / S over the selected: dp_j = (dg_j - sum_s dg_s g_s) / S.
      double S = 0, dot = 0;
      for (int s = 0; s < k; ++s) S += double(p[r.expert[size_t(t * k + s)]]);
      for (int s = 0; s < k; ++s) dot += live(size_t(t * k + s)) * double(r.gate[size_t(t * k + s)]);
      for (int s = 0; s < k; ++s) {
        const size_t a = size_t(t * k + s);
        dp[size_t(t * E + r.expert[a])] += (live(a) - dot) / S;
      }
    }
  }
  (void)logits;
  for (int64_t t = 0; t < N; ++t) {
    const float* p = r.probs.data() + t * E;
    const double* d = dp.data() + t * E;
    double dot = 0;
    for (int e = 0; e < E; ++e) dot += d[e] * double(p[e]);
    for (int e = 0; e < E; ++e) dlogits[t * E + e] += float(double(p[e]) * (d[e] - dot));
  }
}

DispatchPlan plan_dispatch(const Routing& r) {
  return plan_dispatch_assignments(r.token.data(), r.expert.data(), r.gate.data(), r.kept.data(), r.assignments(),
                                   r.experts);
}

}  // namespace mf

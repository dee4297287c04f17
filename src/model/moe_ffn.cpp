#include "model/moe_ffn.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "kernels/cpu/gated_add.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/moe_dispatch.h"
#include "kernels/cpu/router.h"

namespace mf {
namespace {

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
float softplus(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }

template <class T>
T* sized(std::vector<T>& v, int64_t n) {
  v.resize(static_cast<size_t>(n));
  return v.data();
}

// Router logits, noisy selection logits (training), the routing decision and its dispatch plan.
void route_rows(const ModelConfig& c, const MoeWeights& w, const float* h, int64_t N, bool training,
                std::span<const float> gaussian, MoeActs& A) {
  const int64_t H = c.hidden_size;
  const int E = w.num_experts();
  float* logits = sized(A.logits, N * E);
  linear_rowwise(h, N, H, w.router, nullptr, logits);  // a token's route must not depend on its batch
  A.noisy = training && c.routing.policy == RouterPolicy::NoisyTopK;
  const float* selection = logits;
  if (A.noisy) {
    // Shazeer et al.: selection logits z + eps * softplus(W_noise h), eps ~ N(0, 1).
    MF_CHECK(gaussian.size() == size_t(N * E), "moe_ffn_forward: noisy_topk needs ", N * E, " normal draws, got ",
             gaussian.size());
    A.gaussian.assign(gaussian.begin(), gaussian.end());
    float* u = sized(A.noise_logits, N * E);
    linear(h, N, H, w.noise, nullptr, u);
    float* sel = sized(A.selection, N * E);
    for (int64_t i = 0; i < N * E; ++i) sel[i] = logits[i] + A.gaussian[size_t(i)] * softplus(u[i]);
    selection = sel;
  }
  A.options = route_options(c.routing, c.top_k, training, w.selection_bias_or_null());
  route(selection, N, E, A.options, A.routing);
  A.plan = plan_dispatch(A.routing);
}

}  // namespace

void moe_ffn_forward(const ModelConfig& c, const MoeWeights& w, const float* h, int64_t N, bool training,
                     std::span<const float> gaussian, MoeActs& A, float* y, bool keep, ExpertGroup* experts) {
  const int64_t H = c.hidden_size, I = c.expert_intermediate_size();
  const int E = w.num_experts();
  route_rows(c, w, h, N, training, gaussian, A);
  const int64_t rows = A.plan.offsets[size_t(E)];
  // Expert parallel: the gathered rows leave for the experts' ranks (which keep their copy for the
  // backward), so they go in the group's shared buffer instead of this layer's.
  float* gathered = sized(experts ? experts->scratch().gathered : A.gathered, rows * H);
  float* out = sized(A.out, rows * H);
  moe_gather(h, A.plan, H, gathered);
  if (experts) {
    expert_parallel_forward(*experts, w, A.plan.offsets, gathered, H, keep, A.exchange, out);
  } else {
    A.ffn.resize(rows, I, keep);
    float* product = A.ffn.product(keep);
    // One GEMM chain per expert over exactly the rows routed to it, all experts together.
    std::vector<SwigluJob>& jobs = A.expert_jobs;
    jobs.clear();
    for (int e = 0; e < E; ++e) {
      const int64_t r0 = A.plan.offsets[size_t(e)], n = A.plan.offsets[size_t(e) + 1] - r0;
      if (n == 0) continue;
      jobs.push_back({&w.experts[size_t(e)], gathered + r0 * H, n, A.ffn.a.data() + r0 * I, A.ffn.b.data() + r0 * I,
                      product + r0 * I, out + r0 * H});
    }
    swiglu_forward_many(jobs, H);
  }
  moe_scatter_add(out, A.plan, H, y);
  if (!w.has_shared) return;
  const int64_t Is = w.shared.gate.dim(0);  // the shared expert's width
  A.shared.resize(N, Is, keep);
  float* so = sized(A.shared_out, N * H);
  swiglu_forward(w.shared, h, N, H, A.shared.a.data(), A.shared.b.data(), A.shared.product(keep), so);
  const bool gated = w.shared_is_gated();
  float* sg = sized(A.shared_gate, gated ? N : 0);
  if (gated) linear_rowwise(h, N, H, w.shared_gate, nullptr, sg);
  sigmoid_gated_add(so, gated ? sg : nullptr, N, H, y);
}

namespace {

// Calls f(first_row, rows, weight) for the whole batch, or for each sequence with weight 1/batch.
template <class F>
void over_scope(int64_t N, const MoeLossOptions& o, F&& f) {
  if (!o.lb_per_sequence || o.batch <= 1) {
    f(int64_t(0), N, 1.0);
    return;
  }
  const int64_t T = N / o.batch;
  for (int b = 0; b < o.batch; ++b) f(b * T, T, 1.0 / o.batch);
}

bool counts_any(const uint8_t* counted, int64_t r0, int64_t n) {
  if (!counted) return n > 0;
  for (int64_t i = r0; i < r0 + n; ++i)
    if (counted[i]) return true;
  return false;
}

// Adds the aux losses' gradients (o's coefficients) to dz [N, E], the clean logits' gradient.
void add_aux_loss_gradients(const MoeActs& A, const uint8_t* counted, const MoeLossOptions& o, float* dz) {
  const Routing& r = A.routing;
  const int64_t N = r.tokens;
  const int E = r.experts;
  if (o.route_targets && o.domain_coef != 0.0f)
    domain_routing_loss(A.logits.data(), o.route_targets, N, E, N / std::max(o.batch, 1), o.domain_coef, dz,
                        o.domain_per_token);
  if (counts_any(counted, 0, N)) {
    if (o.z_coef != 0.0f) router_z_loss(A.logits.data(), counted, N, E, o.z_coef, dz);
    if (o.lb_coef != 0.0f && !r.expert_choice)
      over_scope(N, o, [&](int64_t r0, int64_t n, double weight) {
        if (!counts_any(counted, r0, n)) return;
        load_balancing_loss(A.logits.data() + r0 * E, r.expert.data() + r0 * r.slots, counted ? counted + r0 : nullptr,
                            n, E, r.slots, float(o.lb_coef * weight), dz + r0 * E);
      });
  }
}

}  // namespace

MoeAuxLosses moe_aux_losses(const MoeActs& A, const uint8_t* counted, const MoeLossOptions& o) {
  const Routing& r = A.routing;
  const int64_t N = r.tokens;
  const int E = r.experts;
  MoeAuxLosses out;
  if (o.route_targets)
    out.domain = domain_routing_loss(A.logits.data(), o.route_targets, N, E, N / std::max(o.batch, 1), 0.0f, nullptr,
                                     o.domain_per_token);
  if (!counts_any(counted, 0, N)) return out;
  out.z = router_z_loss(A.logits.data(), counted, N, E, 0.0f, nullptr);
  if (r.expert_choice) return out;  // balanced by construction
  over_scope(N, o, [&](int64_t r0, int64_t n, double weight) {
    if (!counts_any(counted, r0, n)) return;
    out.lb += weight * load_balancing_loss(A.logits.data() + r0 * E, r.expert.data() + r0 * r.slots,
                                           counted ? counted + r0 : nullptr, n, E, r.slots, 0.0f, nullptr);
  });
  return out;
}

void moe_ffn_backward(const ModelConfig& c, const MoeWeights& w, const MoeGrads& g, MoeActs& A, const float* h,
                      const float* dy, int64_t N, const uint8_t* counted, const MoeLossOptions& o, MoeScratch& s,
                      float* dh, ExpertGroup* experts) {
  const int64_t H = c.hidden_size, I = c.expert_intermediate_size();
  const int E = w.num_experts();
  const Routing& r = A.routing;
  const int64_t rows = A.plan.offsets[size_t(E)];
  float* dout = sized(s.dout, rows * H);
  float* dgate = sized(s.dgate, r.assignments());
  std::fill(dgate, dgate + r.assignments(), 0.0f);  // dropped assignments get no gradient
  float* dgathered = sized(s.dgathered, rows * H);
  moe_scatter_add_backward(dy, A.out.data(), A.plan, H, dout, dgate);
  if (experts) {
    expert_parallel_backward(*experts, w, g.experts, A.exchange, dout, H, s.dmid, dgathered);
  } else {
    float* dmid = sized(s.dmid, rows * I);
    for (int e = 0; e < E; ++e) {
      const int64_t r0 = A.plan.offsets[size_t(e)], n = A.plan.offsets[size_t(e) + 1] - r0;
      if (n == 0) continue;
      swiglu_backward(w.experts[size_t(e)], g.experts[size_t(e)], A.gathered.data() + r0 * H, n, H,
                      A.ffn.a.data() + r0 * I, A.ffn.b.data() + r0 * I, A.ffn.h.data() + r0 * I, dout + r0 * H,
                      dmid + r0 * I, dgathered + r0 * H, false);
    }
  }
  std::fill(dh, dh + N * H, 0.0f);
  moe_gather_backward(dgathered, A.plan, H, dh);

  // Gate gradients -> selection logits. Under noisy top-k the selection logits are
  // z + eps * softplus(u): d z = d sel, d u = d sel * eps * sigmoid(u).
  float* dsel = sized(s.dlogits, N * E);
  std::fill(dsel, dsel + N * E, 0.0f);
  const float* selection = A.noisy ? A.selection.data() : A.logits.data();
  route_backward(selection, r, A.options, dgate, dsel);
  if (A.noisy) {
    float* du = sized(s.dnoise, N * E);
    for (int64_t i = 0; i < N * E; ++i) du[i] = dsel[i] * A.gaussian[size_t(i)] * sigmoid(A.noise_logits[size_t(i)]);
    if (g.noise) linear_backward_weight(du, h, N, E, H, g.noise, nullptr);
    linear_backward_input(du, N, E, w.noise, dh, true);
  }
  float* dz = dsel;  // the clean logits' gradient: routing's plus the aux losses'
  add_aux_loss_gradients(A, counted, o, dz);
  if (g.router) linear_backward_weight(dz, h, N, E, H, g.router, nullptr);
  linear_backward_input(dz, N, E, w.router, dh, true);

  if (!w.has_shared) return;
  const int64_t Is = w.shared.gate.dim(0);  // the shared expert's width
  const bool gated = w.shared_is_gated();
  float* dso = sized(s.dshared, N * H);
  float* dpre = sized(s.dshared_gate, gated ? N : 0);
  sigmoid_gated_add_backward(dy, A.shared_out.data(), gated ? A.shared_gate.data() : nullptr, N, H, dso, dpre);
  if (gated) {
    if (g.shared_gate) linear_backward_weight(dpre, h, N, 1, H, g.shared_gate, nullptr);
    linear_backward_input(dpre, N, 1, w.shared_gate, dh, true);
  }
  float* dmid_shared = sized(s.dshared_mid, N * Is);
  swiglu_backward(w.shared, g.shared, h, N, H, A.shared.a.data(), A.shared.b.data(), A.shared.h.data(), dso,
                  dmid_shared, dh, true);
}

bool router_gates_are_constant(const ModelConfig& c) {
  const RoutingConfig& r = c.routing;
  if (c.top_k != 1) return false;
  return (r.policy == RouterPolicy::SoftmaxTopK && r.norm_topk_prob) || r.policy == RouterPolicy::TopKSoftmax;
}

void moe_router_aux_backward(const MoeGrads& g, const MoeActs& A, const float* h, int64_t N, int64_t H,
                             const uint8_t* counted, const MoeLossOptions& o, MoeScratch& s) {
  if (!g.router) return;
  const int E = A.routing.experts;
  float* dz = sized(s.dlogits, N * E);
  std::fill(dz, dz + N * E, 0.0f);
  add_aux_loss_gradients(A, counted, o, dz);
  linear_backward_weight(dz, h, N, E, H, g.router, nullptr);
}

}  // namespace mf

#include <cmath>

#include "kernels/cpu/activation.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/moe_dispatch.h"
#include "kernels/cpu/norm.h"
#include "model/blocks.h"
#include "moe/routing.h"

namespace mf {
namespace {

// out[rows, H] = down(silu(gate(x)) * up(x)); a and b hold rows * I floats each.
void swiglu(const SwigluWeights& w, const float* x, int64_t rows, int64_t H, float* a, float* b, float* out) {
  const int64_t I = w.gate.dim(0);
  linear(x, rows, H, w.gate, nullptr, a);
  linear(x, rows, H, w.up, nullptr, b);
  silu_mul(a, b, a, rows * I);
  linear(a, rows, I, w.down, nullptr, out);
}

// Inference routing: no noise, the evaluation capacity factor.
void moe_ffn(const ModelConfig& c, const MoeWeights& m, Workspace& ws, std::vector<Tensor>* router_logits) {
  const int64_t N = ws.tokens, H = c.hidden_size, E = m.num_experts();
  linear(ws.h.data(), N, H, m.router, nullptr, ws.router.data());
  if (router_logits) router_logits->push_back(Tensor::from_f32({N, E}, {ws.router.data(), size_t(N * E)}));
  const float* bias = m.selection_bias_or_null();
  route(ws.router.data(), N, int(E), route_options(c.routing, c.top_k, false, bias), ws.routing);
  const DispatchPlan plan = plan_dispatch(ws.routing);
  moe_gather(ws.h.data(), plan, H, ws.gathered.data());
  // One GEMM chain per expert over exactly the rows routed to it.
  for (int64_t e = 0; e < E; ++e) {
    const int64_t r0 = plan.offsets[size_t(e)], rows = plan.offsets[size_t(e) + 1] - r0;
    if (rows == 0) continue;
    const SwigluWeights& w = m.experts[size_t(e)];
    const int64_t I = w.gate.dim(0);
    swiglu(w, ws.gathered.data() + r0 * H, rows, H, ws.ffn_a.data() + r0 * I, ws.ffn_b.data() + r0 * I,
           ws.expert_out.data() + r0 * H);
  }
  moe_scatter_add(ws.expert_out.data(), plan, H, ws.x.data());
  if (!m.has_shared) return;
  swiglu(m.shared, ws.h.data(), N, H, ws.ffn_a.data(), ws.ffn_b.data(), ws.out.data());
  const bool gated = m.shared_is_gated();
  if (gated) linear(ws.h.data(), N, H, m.shared_gate, nullptr, ws.shared_gate.data());
  for (int64_t t = 0; t < N; ++t) {
    const float g = gated ? 1.0f / (1.0f + std::exp(-ws.shared_gate[size_t(t)])) : 1.0f;
    float* x = ws.x.data() + t * H;
    const float* s = ws.out.data() + t * H;
    for (int64_t i = 0; i < H; ++i) x[i] += g * s[i];
  }
}

}  // namespace

void ffn_block(const ModelConfig& c, const LayerWeights& L, Workspace& ws, std::vector<Tensor>* router_logits,
               std::vector<Tensor>* ffn_inputs) {
  const int64_t N = ws.tokens, H = c.hidden_size;
  rmsnorm(ws.x.data(), L.ffn_norm.data<float>(), N, H, c.rms_norm_eps, ws.h.data());
  if (ffn_inputs) ffn_inputs->push_back(Tensor::from_f32({N, H}, {ws.h.data(), size_t(N * H)}));
  if (L.is_moe) {
    moe_ffn(c, L.moe, ws, router_logits);
    return;
  }
  swiglu(L.mlp, ws.h.data(), N, H, ws.ffn_a.data(), ws.ffn_b.data(), ws.out.data());
  add_inplace(ws.x.data(), ws.out.data(), N * H);
}

}  // namespace mf

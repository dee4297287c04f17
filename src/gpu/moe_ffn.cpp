#include "gpu/moe_ffn.h"

#include <algorithm>

#include "core/error.h"
#include "gpu/model_layout.h"
#include "kernels/cuda/activation.h"
#include "kernels/cuda/adamw.h"
#include "kernels/cuda/gated_add.h"
#include "kernels/cuda/router.h"
#include "moe/routing.h"

namespace mf::gpu {
namespace {

// Router logits (and noisy selection logits), top-k gates, aux losses and the dispatch plan,
// whose sizes are then read back to the host.
void route_rows(DeviceStep& d, const ModelConfig& c, const GpuLayer& L, const bf16* h, int64_t N,
                const MoeFfnPass& pass, MoeSaved& S) {
  cuda::DeviceArena& A = d.arena;
  const cudaStream_t st = d.s();
  const int64_t H = c.hidden_size;
  const int E = L.experts.count, slots = moe_slots(c);
  S.logits = A.alloc<float>(size_t(N * E), "router logits");
  S.probs = pass.training ? A.alloc<float>(size_t(N * E), "router probabilities") : nullptr;
  S.index = A.alloc<int32_t>(size_t(N * slots), "expert index");
  S.gates = A.alloc<float>(size_t(N * slots), "gates");
  cuda::linear_forward(d.blas, h, L.router->compute, S.logits, OutType::f32, N, E, H);
  const RouteOptions ro = route_options(c.routing, slots, pass.training, nullptr);
  const float* selection = S.logits;
  S.noise_logits = S.selection = S.gaussian = nullptr;
  if (pass.training && L.noise) {
    MF_CHECK(pass.gaussian.size() == size_t(N * E), "moe_ffn_forward: noisy_topk needs ", N * E,
             " normal draws, got ", pass.gaussian.size());
    S.gaussian = upload_to<float>(A, pass.gaussian, "router noise", st);
    S.noise_logits = A.alloc<float>(size_t(N * E), "noise logits");
    S.selection = A.alloc<float>(size_t(N * E), "noisy selection logits");
    cuda::linear_forward(d.blas, h, L.noise->compute, S.noise_logits, OutType::f32, N, E, H);
    cuda::noisy_logits_forward(S.logits, S.noise_logits, S.gaussian, S.selection, N * E, st);
    selection = S.selection;
  }
  cuda::router_topk_forward(selection, N, E, slots, topk_gating(c.routing.policy), ro.renormalize,
                            L.selection_bias ? L.selection_bias->f32 : nullptr, S.probs, S.index, S.gates, st);
  S.aux = nullptr;
  if (pass.counted) {
    void* aux_scratch = A.allocate(cuda::router_aux_scratch_bytes(N, E), "router aux scratch");
    S.aux = A.alloc<float>(moe_aux_floats(pass), "aux losses");
    cuda::router_aux_forward(S.logits, S.index, N, E, slots, pass.counted, S.aux, aux_scratch, st);
    if (pass.per_sequence) {
      const int64_t T = N / pass.batch;
      for (int b = 0; b < pass.batch; ++b)
        cuda::router_aux_forward(S.logits + b * T * E, S.index + b * T * slots, T, E, slots, pass.counted + b * T,
                                 S.aux + 2 + 2 * b, aux_scratch, st);
    }
  }
  S.plan.counts = A.alloc<int32_t>(size_t(E), "plan counts");
  S.plan.offsets = A.alloc<int32_t>(size_t(E) + 1, "plan offsets");
  S.plan.row_of_slot = A.alloc<int32_t>(size_t(N * slots), "plan rows");
  S.plan.slot_of_row = A.alloc<int32_t>(size_t(N * slots), "plan slots");
  // A capacity of every assignment drops nothing; the cap keeps it in the kernel's int.
  const int64_t capacity = std::min<int64_t>(expert_capacity(ro, N, E), N * slots);
  void* plan_scratch = A.allocate(cuda::plan_dispatch_scratch_bytes(E), "dispatch scratch");
  cuda::plan_dispatch(S.index, N, slots, E, int(capacity), S.plan, plan_scratch, st);
  // The grouped GEMM takes its per-expert sizes on the host: one small copy and wait per layer.
  S.offsets.resize(size_t(E) + 1);
  copy_to_host(S.offsets.data(), S.plan.offsets, S.offsets.size() * 4, "dispatch offsets", st);
  d.stream.synchronize("MoE dispatch plan");
  S.rows = S.offsets.back();
}

}  // namespace

int moe_slots(const ModelConfig& c) { return c.routing.policy == RouterPolicy::Switch ? 1 : c.top_k; }

size_t moe_aux_floats(const MoeFfnPass& pass) { return 2 + (pass.per_sequence ? 2 * size_t(pass.batch) : 0); }

void moe_ffn_forward(DeviceStep& d, const ModelConfig& c, const GpuLayer& L, const bf16* h, int64_t N,
                     const MoeFfnPass& pass, float* x_out, MoeSaved& S) {
  cuda::DeviceArena& A = d.arena;
  const cudaStream_t st = d.s();
  const int64_t H = c.hidden_size, I = L.experts.inter;
  const int E = L.experts.count, slots = moe_slots(c);
  route_rows(d, c, L, h, N, pass, S);
  const size_t R = size_t(std::max<int64_t>(S.rows, 1));
  S.xp = A.alloc<bf16>(R * size_t(H), "permuted FFN input");
  S.gate_up = A.alloc<bf16>(R * size_t(2 * I), "expert gate/up");
  S.product = A.alloc<bf16>(R * size_t(I), "expert SwiGLU");
  S.yp = A.alloc<bf16>(R * size_t(H), "expert outputs");
  void* pointers = A.allocate(cuda::grouped_pointer_bytes(E), "grouped GEMM pointers");
  cuda::permute_rows(h, S.plan, N, slots, H, S.xp, st);
  const cuda::ExpertGroups gate_up{S.offsets, L.experts.gate_up_w}, down{S.offsets, L.experts.down_w};
  cuda::grouped_linear_forward(d.blas, gate_up, S.xp, S.gate_up, OutType::bf16, 2 * I, H, pointers);
  cuda::silu_mul(S.gate_up, S.gate_up + I, S.rows, I, 2 * I, S.product, st);
  cuda::grouped_linear_forward(d.blas, down, S.product, S.yp, OutType::bf16, H, I, pointers);
  cuda::combine_rows(S.yp, S.gates, S.plan, N, slots, H, x_out, st);
  S.shared_out = nullptr;
  S.shared_logits = nullptr;
  if (!L.shared.gate_up) return;
  S.shared_out = A.alloc<bf16>(size_t(N * H), "shared expert output");
  swiglu_forward(d, L.shared, h, N, H, S.shared, S.shared_out, OutType::bf16, 0.0f);
  if (L.shared_gate) {
    S.shared_logits = A.alloc<float>(size_t(N), "shared gate logits");
    cuda::linear_forward(d.blas, h, L.shared_gate->compute, S.shared_logits, OutType::f32, N, 1, H);
  }
  cuda::sigmoid_gated_add(S.shared_out, S.shared_logits, N, H, x_out, st);
}

void moe_ffn_backward(DeviceStep& d, const ModelConfig& c, const GpuLayer& L, const bf16* h, int64_t N,
                      const MoeFfnPass& pass, const MoeLossCoefs& coefs, const MoeSaved& S, const float* dy,
                      float* dh) {
  cuda::DeviceArena& A = d.arena;
  cuda::Blas& B = d.blas;
  const cudaStream_t st = d.s();
  const int64_t H = c.hidden_size, I = L.experts.inter;
  const int E = L.experts.count, slots = moe_slots(c);
  const size_t R = size_t(std::max<int64_t>(S.rows, 1));
  bf16* dyp = A.alloc<bf16>(R * size_t(H), "d expert outputs");
  bf16* dproduct = A.alloc<bf16>(R * size_t(I), "d expert SwiGLU");
  bf16* dgate_up = A.alloc<bf16>(R * size_t(2 * I), "d expert gate/up");
  bf16* dxp = A.alloc<bf16>(R * size_t(H), "d permuted input");
  float* dgates = A.alloc<float>(size_t(N * slots), "d gates");
  float* dlogits = A.alloc<float>(size_t(N * E), "d router logits");
  bf16* dlogits_b = A.alloc<bf16>(size_t(N * E), "d router logits (bf16)");
  void* pointers = A.allocate(cuda::grouped_pointer_bytes(E), "grouped GEMM pointers");
  void* aux_scratch = A.allocate(cuda::router_aux_scratch_bytes(N, E), "router aux scratch");

  // The experts, in the forward's reverse order: combine, down, SwiGLU, gate/up, permute.
  cuda::combine_rows_backward(dy, S.yp, S.gates, S.plan, N, slots, H, dyp, dgates, st);
  const cuda::ExpertGroups gate_up{S.offsets, L.experts.gate_up_w}, down{S.offsets, L.experts.down_w};
  cuda::grouped_linear_backward_weight(B, down, L.experts.down_g, dyp, S.product, H, I, pointers);
  cuda::grouped_linear_backward_input(B, down, dyp, dproduct, OutType::bf16, H, I, pointers);
  cuda::silu_mul_backward(S.gate_up, S.gate_up + I, dproduct, S.rows, I, 2 * I, dgate_up, dgate_up + I, st);
  cuda::grouped_linear_backward_weight(B, gate_up, L.experts.gate_up_g, dgate_up, S.xp, 2 * I, H, pointers);
  cuda::grouped_linear_backward_input(B, gate_up, dgate_up, dxp, OutType::bf16, 2 * I, H, pointers);
  zero_device(dh, size_t(N * H) * 4, st);
  cuda::permute_rows_backward(dxp, S.plan, N, slots, H, dh, st);

  // The router: gates, noise, aux losses.
  const RouteOptions ro = route_options(c.routing, slots, true, nullptr);
  cuda::router_topk_backward(S.probs, S.index, S.gates, dgates, S.plan.row_of_slot, N, E, slots,
                             topk_gating(c.routing.policy), ro.renormalize, dlogits, st);
  if (S.selection) {
    // selection = z + eps * softplus(u): d z = d selection, d u = d selection * eps * sigmoid(u).
    float* dnoise = A.alloc<float>(size_t(N * E), "d noise logits");
    bf16* dnoise_b = A.alloc<bf16>(size_t(N * E), "d noise logits (bf16)");
    cuda::noisy_logits_backward(dlogits, S.noise_logits, S.gaussian, dnoise, N * E, st);
    cuda::convert_f32_to_bf16(dnoise, dnoise_b, N * E, st);
    if (L.noise->grad) cuda::linear_backward_weight(B, dnoise_b, h, L.noise->grad, N, E, H);
    cuda::linear_backward_input(B, dnoise_b, L.noise->compute, dh, OutType::f32, N, E, H, 1.0f);
  }
  if (!pass.per_sequence) {
    cuda::router_aux_backward(S.logits, S.index, N, E, slots, pass.counted, coefs.lb, coefs.z, coefs.grad_scale,
                              dlogits, aux_scratch, st);
  } else {
    cuda::router_aux_backward(S.logits, S.index, N, E, slots, pass.counted, 0.0f, coefs.z, coefs.grad_scale, dlogits,
                              aux_scratch, st);
    const int64_t T = N / pass.batch;
    for (int b = 0; b < pass.batch; ++b)
      cuda::router_aux_backward(S.logits + b * T * E, S.index + b * T * slots, T, E, slots, pass.counted + b * T,
                                coefs.lb / float(pass.batch), 0.0f, coefs.grad_scale, dlogits + b * T * E,
                                aux_scratch, st);
  }
  cuda::convert_f32_to_bf16(dlogits, dlogits_b, N * E, st);
  if (L.router->grad) cuda::linear_backward_weight(B, dlogits_b, h, L.router->grad, N, E, H);
  cuda::linear_backward_input(B, dlogits_b, L.router->compute, dh, OutType::f32, N, E, H, 1.0f);
  if (!L.shared.gate_up) return;

  // x_out += s * shared(h), s = sigmoid(h . w_gate) or 1.
  bf16* dshared = A.alloc<bf16>(size_t(N * H), "d shared output");
  float* dshared_logits = L.shared_gate ? A.alloc<float>(size_t(N), "d shared gate logits") : nullptr;
  cuda::sigmoid_gated_add_backward(dy, S.shared_out, S.shared_logits, N, H, dshared, dshared_logits, st);
  swiglu_backward(d, L.shared, h, N, H, S.shared, dshared, dh, OutType::f32, 1.0f);
  if (L.shared_gate) {
    bf16* dshared_logits_b = A.alloc<bf16>(size_t(N), "d shared gate logits (bf16)");
    cuda::convert_f32_to_bf16(dshared_logits, dshared_logits_b, N, st);
    if (L.shared_gate->grad) cuda::linear_backward_weight(B, dshared_logits_b, h, L.shared_gate->grad, N, 1, H);
    cuda::linear_backward_input(B, dshared_logits_b, L.shared_gate->compute, dh, OutType::f32, N, 1, H, 1.0f);
  }
}

}  // namespace mf::gpu

#include "gpu/swiglu.h"

#include "kernels/cuda/activation.h"

namespace mf::gpu {

void swiglu_forward(DeviceStep& d, const SwigluBinding& w, const bf16* x, int64_t rows, int64_t H, SwigluSaved& S,
                    void* y, OutType y_type, float beta) {
  const int64_t I = w.inter;
  S.gate_up = d.arena.alloc<bf16>(size_t(rows * 2 * I), "gate/up");
  S.product = d.arena.alloc<bf16>(size_t(rows * I), "SwiGLU");
  cuda::linear_forward(d.blas, x, w.gate_up->compute, S.gate_up, OutType::bf16, rows, 2 * I, H);
  cuda::silu_mul(S.gate_up, S.gate_up + I, rows, I, 2 * I, S.product, d.s());
  cuda::linear_forward(d.blas, S.product, w.down->compute, y, y_type, rows, H, I, beta);
}

void swiglu_backward(DeviceStep& d, const SwigluBinding& w, const bf16* x, int64_t rows, int64_t H,
                     const SwigluSaved& S, const bf16* dy, void* dx, OutType dx_type, float beta) {
  const int64_t I = w.inter;
  bf16* dproduct = d.arena.alloc<bf16>(size_t(rows * I), "d SwiGLU");
  bf16* dgate_up = d.arena.alloc<bf16>(size_t(rows * 2 * I), "d gate/up");
  if (w.down->grad) cuda::linear_backward_weight(d.blas, dy, S.product, w.down->grad, rows, H, I);
  cuda::linear_backward_input(d.blas, dy, w.down->compute, dproduct, OutType::bf16, rows, H, I);
  cuda::silu_mul_backward(S.gate_up, S.gate_up + I, dproduct, rows, I, 2 * I, dgate_up, dgate_up + I, d.s());
  if (w.gate_up->grad) cuda::linear_backward_weight(d.blas, dgate_up, x, w.gate_up->grad, rows, 2 * I, H);
  cuda::linear_backward_input(d.blas, dgate_up, w.gate_up->compute, dx, dx_type, rows, 2 * I, H, beta);
}

}  // namespace mf::gpu

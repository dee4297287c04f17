#include "model/swiglu.h"

#include "kernels/cpu/activation.h"
#include "kernels/cpu/matmul.h"

namespace mf {

void swiglu_forward(const SwigluWeights& w, const float* x, int64_t rows, int64_t H, float* a, float* b, float* h,
                    float* out) {
  const int64_t I = w.gate.dim(0);
  // The LinearWeight overloads: decode steps of a packed quantized model take the packed copy,
  // gate and up in one parallel loop.
  const LinearJob gate_up[] = {{x, rows, H, &w.gate, nullptr, a}, {x, rows, H, &w.up, nullptr, b}};
  linear_many(gate_up);
  silu_mul(a, b, h, rows * I);
  linear(h, rows, I, w.down, nullptr, out);
}

void swiglu_backward(const SwigluWeights& w, const SwigluGrads& g, const float* x, int64_t rows, int64_t H, float* a,
                     float* b, const float* h, const float* dout, float* dh, float* dx, bool accumulate) {
  const int64_t I = w.gate.dim(0);
  if (g.down) linear_backward_weight(dout, h, rows, H, I, g.down, nullptr);
  linear_backward_input(dout, rows, H, w.down.w, dh, false);
  silu_mul_backward(a, b, dh, a, b, rows * I);
  if (g.gate) linear_backward_weight(a, x, rows, I, H, g.gate, nullptr);
  if (g.up) linear_backward_weight(b, x, rows, I, H, g.up, nullptr);
  linear_backward_input(a, rows, I, w.gate.w, dx, accumulate);
  linear_backward_input(b, rows, I, w.up.w, dx, true);
}

}  // namespace mf

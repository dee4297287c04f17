#include "model/swiglu.h"

#include "kernels/cpu/activation.h"
#include "kernels/cpu/matmul.h"

namespace mf {

void swiglu_forward(const SwigluWeights& w, const float* x, int64_t rows, int64_t H, float* a, float* b, float* h,
                    float* out) {
  const SwigluJob job{&w, x, rows, a, b, h, out};
  swiglu_forward_many({&job, 1}, H);
}

void swiglu_forward_many(std::span<const SwigluJob> jobs, int64_t H) {
  // The LinearWeight overloads: decode steps of a packed quantized model take the packed copies.
  thread_local std::vector<LinearJob> linears;  // reused: no allocation per decode step
  linears.clear();
  for (const SwigluJob& j : jobs) {
    linears.push_back({j.x, j.rows, H, &j.w->gate, nullptr, j.a});
    linears.push_back({j.x, j.rows, H, &j.w->up, nullptr, j.b});
  }
  linear_many(linears);
  linears.clear();
  for (const SwigluJob& j : jobs) {
    const int64_t I = j.w->gate.dim(0);
    silu_mul(j.a, j.b, j.h, j.rows * I);
    linears.push_back({j.h, j.rows, I, &j.w->down, nullptr, j.out});
  }
  linear_many(linears);
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

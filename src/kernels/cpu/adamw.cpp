#include "kernels/cpu/adamw.h"

#include <cmath>

#include "core/error.h"
#include "core/work_pool.h"

namespace mf {

namespace {
// Elements per piece of work: the pieces are fixed by the size alone, so the gradient norm's sum
// does not depend on the thread count.
constexpr int64_t kPiece = int64_t(1) << 16;
}  // namespace

void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWHyper& h) {
  MF_CHECK(n >= 0 && h.step >= 1, "adamw_update: need n >= 0 and step >= 1, got n=", n, " step=", h.step);
  // Bias corrections in double, rounded once, as PyTorch computes them from Python floats.
  const double bc1 = 1.0 - std::pow(double(h.beta1), double(h.step));
  const double bc2 = 1.0 - std::pow(double(h.beta2), double(h.step));
  const float step_size = float(double(h.lr) / bc1);
  const float bc2_sqrt = float(std::sqrt(bc2));
  const float decay = 1.0f - h.lr * h.weight_decay;
  const float b1 = h.beta1, b2 = h.beta2, eps = h.eps;
  parallel_ranges(n, kPiece, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) {
      const float g = grad[i];
      const float mi = b1 * m[i] + (1.0f - b1) * g;
      const float vi = b2 * v[i] + (1.0f - b2) * g * g;
      m[i] = mi;
      v[i] = vi;
      param[i] = param[i] * decay - step_size * (mi / (std::sqrt(vi) / bc2_sqrt + eps));
    }
  });
}

double sum_of_squares(const float* x, int64_t n) {
  return parallel_sum(n, kPiece, [&](int64_t begin, int64_t end) {
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = begin; i < end; ++i) s += double(x[i]) * double(x[i]);
    return s;
  });
}

void scale_inplace(float* x, int64_t n, float s) {
  parallel_ranges(n, kPiece, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) x[i] *= s;
  });
}

}  // namespace mf

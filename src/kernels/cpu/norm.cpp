#include "kernels/cpu/norm.h"

#include <cmath>

#include "core/error.h"
#include "kernels/cpu/simd.h"

namespace mf {

namespace {

void rmsnorm_row(const float* x, const float* weight, int64_t dim, float eps, float* y) {
  float inv = 1.0f / std::sqrt(simd::dot(x, x, dim) / float(dim) + eps);
#pragma omp simd
  for (int64_t i = 0; i < dim; ++i) y[i] = weight[i] * (x[i] * inv);
}

}  // namespace

void rmsnorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, float* y) {
  MF_CHECK(rows >= 0 && dim > 0, "rmsnorm: bad shape [", rows, ", ", dim, "]");
  // One row (decode) is far too little work to split across threads.
  if (rows * dim < (1 << 15)) {
    for (int64_t r = 0; r < rows; ++r) rmsnorm_row(x + r * dim, weight, dim, eps, y + r * dim);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) rmsnorm_row(x + r * dim, weight, dim, eps, y + r * dim);
}

}  // namespace mf

#include "kernels/cpu/norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/work_pool.h"
#include "kernels/cpu/simd.h"

namespace mf {

namespace {

void rmsnorm_row(const float* x, const float* weight, int64_t dim, float eps, float* y) {
  float inv = 1.0f / std::sqrt(simd::dot(x, x, dim) / float(dim) + eps);
#pragma omp simd
  for (int64_t i = 0; i < dim; ++i) y[i] = weight[i] * (x[i] * inv);
}

// Below this many elements a loop runs on the calling thread: the hand-off costs more than the work.
constexpr int64_t kParallelMin = int64_t(1) << 15;

// Rows of `dim` elements per piece of a parallel loop over rows.
int64_t rows_per_piece(int64_t dim) { return std::max<int64_t>(1, kParallelMin / 2 / dim); }

}  // namespace

void rmsnorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, float* y) {
  MF_CHECK(rows >= 0 && dim > 0, "rmsnorm: bad shape [", rows, ", ", dim, "]");
  // One row (decode) is far too little work to split across threads.
  parallel_ranges(rows, rows_per_piece(dim), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) rmsnorm_row(x + r * dim, weight, dim, eps, y + r * dim);
  });
}

void rmsnorm_backward(const float* x, const float* weight, const float* dy, int64_t rows, int64_t dim, float eps,
                      float* dx, float* dweight) {
  MF_CHECK(rows >= 0 && dim > 0, "rmsnorm_backward: bad shape [", rows, ", ", dim, "]");
  // dweight first: it reads dy, which dx may overwrite. Columns are split across threads so
  // each dweight entry has one writer; the per-row scale r is computed once.
  thread_local std::vector<float> inv;  // per-row 1/rms, reused across calls (no allocation per step)
  inv.resize(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r)
    inv[size_t(r)] = 1.0f / std::sqrt(simd::dot(x + r * dim, x + r * dim, dim) / float(dim) + eps);
  // Worker threads must read this thread's buffer, not their own (empty) thread_local one.
  const float* row_inv = inv.data();
  const bool parallel = rows * dim >= kParallelMin;
  if (dweight) {
    constexpr int64_t kCols = 64;
    auto columns = [&](int64_t chunk, int) {
      const int64_t c0 = chunk * kCols, c1 = std::min(dim, c0 + kCols);
      for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * dim;
        const float* dyr = dy + r * dim;
        const float s = row_inv[r];
#pragma omp simd
        for (int64_t i = c0; i < c1; ++i) dweight[i] += dyr[i] * xr[i] * s;
      }
    };
    const int64_t col_chunks = (dim + kCols - 1) / kCols;
    if (parallel) {
      parallel_chunks(col_chunks, columns);
    } else {
      for (int64_t c = 0; c < col_chunks; ++c) columns(c, 0);
    }
  }
  parallel_ranges(rows, rows_per_piece(dim), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* xr = x + r * dim;
      const float* dyr = dy + r * dim;
      float* dxr = dx + r * dim;
      const float s = row_inv[r];
      float gx = 0;
#pragma omp simd reduction(+ : gx)
      for (int64_t i = 0; i < dim; ++i) gx += weight[i] * dyr[i] * xr[i];
      const float k = s * s * s * gx / float(dim);
#pragma omp simd
      for (int64_t i = 0; i < dim; ++i) dxr[i] = s * weight[i] * dyr[i] - k * xr[i];
    }
  });
}

}  // namespace mf

#include "kernels/cpu/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/work_pool.h"
#include "kernels/cpu/simd.h"

namespace mf {

float exp_minus_max(float* x, int64_t cols, float* max_out) {
  const float max = simd::max_of(x, cols);
  *max_out = max;
  if (max == -std::numeric_limits<float>::infinity()) {  // fully masked row: no probability mass
    for (int64_t i = 0; i < cols; ++i) x[i] = 0.0f;
    return 0.0f;
  }
  float sum = 0.0f;
  int64_t i = 0;
#if defined(__AVX512F__)
  __m512 vmax = _mm512_set1_ps(max), vsum = _mm512_setzero_ps();
  for (; i + 16 <= cols; i += 16) {
    __m512 e = simd::exp_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), vmax));
    _mm512_storeu_ps(x + i, e);
    vsum = _mm512_add_ps(vsum, e);
  }
  sum = _mm512_reduce_add_ps(vsum);
#endif
  for (; i < cols; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  return sum;
}

void softmax_row(float* x, int64_t cols) {
  float max = 0;
  const float sum = exp_minus_max(x, cols, &max);
  if (sum == 0.0f) return;  // fully masked: exp_minus_max left zeros
  float inv = 1.0f / sum;
#pragma omp simd
  for (int64_t j = 0; j < cols; ++j) x[j] *= inv;
}

double softmax_row_f64(const float* x, int64_t n, double* p) {
  double mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, double(x[i]));
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += (p[i] = std::exp(double(x[i]) - mx));
  for (int64_t i = 0; i < n; ++i) p[i] /= sum;
  return mx + std::log(sum);
}

void softmax_row_f64_backward(const double* p, const double* dp, int64_t n, float* dx) {
  double dot = 0;
  for (int64_t i = 0; i < n; ++i) dot += dp[i] * p[i];
  for (int64_t i = 0; i < n; ++i) dx[i] += float(p[i] * (dp[i] - dot));
}

void softmax_rows(float* x, int64_t rows, int64_t cols) {
  MF_CHECK(rows >= 0 && cols > 0, "softmax_rows: bad shape [", rows, ", ", cols, "]");
  parallel_ranges(rows, std::max<int64_t>(1, (int64_t(1) << 14) / cols), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) softmax_row(x + r * cols, cols);
  });
}

}  // namespace mf

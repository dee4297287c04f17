#include "kernels/cpu/softmax_xent.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/work_pool.h"
#include "kernels/cpu/simd.h"

namespace mf {
namespace {

// sum_i exp(z_i - zmax), each exp in fp32 (stored in e when given), the sum in double. The
// lanes are widened to double and kept in vector accumulators; the order is fixed by n alone.
double exp_minus_max_sum(const float* z, int64_t n, float zmax, float* e) {
  double sum = 0;
  int64_t i = 0;
#if defined(__AVX512F__)
  const __m512 vmax = _mm512_set1_ps(zmax);
  __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
  for (; i + 16 <= n; i += 16) {
    const __m512 v = simd::exp_ps(_mm512_sub_ps(_mm512_loadu_ps(z + i), vmax));
    if (e) _mm512_storeu_ps(e + i, v);
    lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
    hi = _mm512_add_pd(hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
  }
  sum = _mm512_reduce_add_pd(_mm512_add_pd(lo, hi));
#endif
  for (; i < n; ++i) {
    const float v = std::exp(z[i] - zmax);
    if (e) e[i] = v;
    sum += v;
  }
  return sum;
}

}  // namespace

CrossEntropySums cross_entropy(const float* logits, const int32_t* targets, int64_t rows, int64_t vocab,
                               float grad_scale, float* dlogits) {
  MF_CHECK(rows >= 0 && vocab > 0, "cross_entropy: bad shape [", rows, ", ", vocab, "]");
  for (int64_t r = 0; r < rows; ++r)
    MF_CHECK(targets[r] < vocab, "cross_entropy: target ", targets[r], " of row ", r, " is outside the vocabulary of ",
             vocab);
  // Pieces of rows fixed by the shape, their losses added in order: the same sum at any thread count.
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / vocab);
  const int64_t pieces = (rows + grain - 1) / grain;
  std::vector<double> piece_loss(static_cast<size_t>(pieces), 0.0);
  std::vector<int64_t> piece_counted(static_cast<size_t>(pieces), 0);
  parallel_ranges(rows, grain, [&](int64_t begin, int64_t end) {
    double& loss = piece_loss[size_t(begin / grain)];
    int64_t& counted = piece_counted[size_t(begin / grain)];
    for (int64_t r = begin; r < end; ++r) {
      const float* z = logits + r * vocab;
      const int32_t target = targets[r];
      if (target < 0) {
        if (dlogits) std::fill(dlogits + r * vocab, dlogits + (r + 1) * vocab, 0.0f);
        continue;
      }
      const float zmax = simd::max_of(z, vocab);
      const float zt = z[target];  // read before d (which may alias z) is written
      // e_i = exp(z_i - max) in fp32 (one exp per entry, kept in d for the gradient), summed in
      // double: vocabularies of 50k+ entries lose digits in an fp32 sum.
      const double sum = exp_minus_max_sum(z, vocab, zmax, dlogits ? dlogits + r * vocab : nullptr);
      loss += std::log(sum) - double(zt - zmax);
      ++counted;
      if (dlogits) {
        float* e = dlogits + r * vocab;
        const float scale = float(double(grad_scale) / sum);
#pragma omp simd
        for (int64_t j = 0; j < vocab; ++j) e[j] *= scale;
        e[target] -= grad_scale;
      }
    }
  });
  double loss = 0;
  int64_t counted = 0;
  for (int64_t p = 0; p < pieces; ++p) {
    loss += piece_loss[size_t(p)];
    counted += piece_counted[size_t(p)];
  }
  return {loss, counted};
}

}  // namespace mf

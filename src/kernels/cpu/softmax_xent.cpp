#include "kernels/cpu/softmax_xent.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/work_pool.h"
#include "kernels/cpu/simd.h"

namespace mf {

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
      float zmax = z[0];
      for (int64_t i = 1; i < vocab; ++i) zmax = std::max(zmax, z[i]);
      const float zt = z[target];  // read before d (which may alias z) is written
      // e_i = exp(z_i - max) in fp32 (one exp per entry, kept in d for the gradient), summed in
      // double: vocabularies of 50k+ entries lose digits in an fp32 sum.
      float* e = dlogits ? dlogits + r * vocab : nullptr;
      double sum = 0;
      int64_t i = 0;
#if defined(__AVX512F__)
      const __m512 vmax = _mm512_set1_ps(zmax);
      for (; i + 16 <= vocab; i += 16) {
        const __m512 v = simd::exp_ps(_mm512_sub_ps(_mm512_loadu_ps(z + i), vmax));
        if (e) _mm512_storeu_ps(e + i, v);
        alignas(64) float lanes[16];
        _mm512_store_ps(lanes, v);
        double part = 0;
        for (float l : lanes) part += l;
        sum += part;
      }
#endif
      for (; i < vocab; ++i) {
        const float v = std::exp(z[i] - zmax);
        if (e) e[i] = v;
        sum += v;
      }
      loss += std::log(sum) - double(zt - zmax);
      ++counted;
      if (e) {
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

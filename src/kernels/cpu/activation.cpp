#include "kernels/cpu/activation.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/work_pool.h"
#include "kernels/cpu/simd.h"

namespace mf {

namespace {

// Elements per piece of a parallel loop: below this the hand-off costs more than the work.
constexpr int64_t kPiece = 1 << 14;

void silu_mul_range(const float* gate, const float* up, float* out, int64_t begin, int64_t end) {
  int64_t i = begin;
#if defined(__AVX512F__)
  const __m512 one = _mm512_set1_ps(1.0f);
  for (; i + 16 <= end; i += 16) {
    __m512 g = _mm512_loadu_ps(gate + i);
    __m512 e = simd::exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), g));
    __m512 s = _mm512_div_ps(g, _mm512_add_ps(one, e));
    _mm512_storeu_ps(out + i, _mm512_mul_ps(s, _mm512_loadu_ps(up + i)));
  }
#endif
  for (; i < end; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

}  // namespace

void silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  MF_CHECK(n >= 0, "silu_mul: negative length ", n);
  parallel_ranges(n, kPiece, [&](int64_t begin, int64_t end) { silu_mul_range(gate, up, out, begin, end); });
}

void silu_mul_backward(const float* gate, const float* up, const float* dout, float* dgate, float* dup, int64_t n) {
  MF_CHECK(n >= 0, "silu_mul_backward: negative length ", n);
  parallel_ranges(n, kPiece, [&](int64_t begin, int64_t end) {
    int64_t i = begin;
#if defined(__AVX512F__)
    // The same exp as the forward (std::exp does not vectorize here: GCC calls it per lane).
    const __m512 one = _mm512_set1_ps(1.0f);
    for (; i + 16 <= end; i += 16) {
      const __m512 g = _mm512_loadu_ps(gate + i), u = _mm512_loadu_ps(up + i), d = _mm512_loadu_ps(dout + i);
      const __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, simd::exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), g))));
      const __m512 du = _mm512_mul_ps(d, u);
      // d * u * s * (1 + g * (1 - s)), and d * g * s
      _mm512_storeu_ps(dgate + i, _mm512_mul_ps(_mm512_mul_ps(du, s),
                                                _mm512_fmadd_ps(g, _mm512_sub_ps(one, s), one)));
      _mm512_storeu_ps(dup + i, _mm512_mul_ps(_mm512_mul_ps(d, g), s));
    }
#endif
    for (; i < end; ++i) {
      const float g = gate[i], u = up[i], d = dout[i];
      const float s = 1.0f / (1.0f + std::exp(-g));
      dgate[i] = d * u * s * (1.0f + g * (1.0f - s));
      dup[i] = d * g * s;
    }
  });
}

void add_inplace(float* y, const float* x, int64_t n) {
  MF_CHECK(n >= 0, "add_inplace: negative length ", n);
  parallel_ranges(n, kPiece, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) y[i] += x[i];
  });
}

}  // namespace mf

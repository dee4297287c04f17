// Internal SIMD helpers shared by the CPU kernels (not part of the public kernel API):
// horizontal sums, a vectorised exp accurate to a couple of ulp, and fp32 dot products.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__AVX512F__) || defined(__AVX2__)
// GCC 12's AVX-512 headers trip -Wuninitialized on their own _mm512_undefined_* placeholders
// (GCC bug 105593); the warning points into the header, so silence it there only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

namespace mf::simd {

#if defined(__AVX512F__)
constexpr int kWidth = 16;

// exp(x) for 16 lanes: range reduction x = n*ln2 + r, |r| <= ln2/2, then a degree-6
// minimax polynomial (Cephes expf coefficients) and an exact scale by 2^n.
inline __m512 exp_ps(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-110.0f)), _mm512_set1_ps(88.7228f));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  __m512 r2 = _mm512_mul_ps(r, r);
  p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);  // scalef handles underflow to 0 without bit tricks
}
#endif

// Dot product of two fp32 vectors (several accumulators to hide FMA latency).
inline float dot(const float* a, const float* b, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
  }
  if (i + 16 <= n) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    i += 16;
  }
  if (i < n) {
    __mmask16 tail = __mmask16((1u << (n - i)) - 1);
    acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, a + i), _mm512_maskz_loadu_ps(tail, b + i),
                           acc1);
    i = n;
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
#else
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  float total = 0;
  for (; i < n; ++i) total += a[i] * b[i];
  for (float v : acc) total += v;
  return total;
#endif
}

// The largest of x[0..n), n >= 1 (two accumulators: max has a 4-cycle latency).
inline float max_of(const float* x, int64_t n) {
  float m = x[0];
  int64_t i = 0;
#if defined(__AVX512F__)
  if (n >= 32) {
    __m512 m0 = _mm512_loadu_ps(x), m1 = _mm512_loadu_ps(x + 16);
    for (i = 32; i + 32 <= n; i += 32) {
      m0 = _mm512_max_ps(m0, _mm512_loadu_ps(x + i));
      m1 = _mm512_max_ps(m1, _mm512_loadu_ps(x + i + 16));
    }
    m = _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
  }
#endif
  for (; i < n; ++i) m = m > x[i] ? m : x[i];
  return m;
}

// y[i] += alpha * x[i]
inline void axpy(float alpha, const float* x, float* y, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  __m512 va = _mm512_set1_ps(alpha);
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
  if (i < n) {
    __mmask16 tail = __mmask16((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, tail,
                          _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(tail, x + i),
                                          _mm512_maskz_loadu_ps(tail, y + i)));
    i = n;
  }
#endif
  for (; i < n; ++i) y[i] += alpha * x[i];
}

}  // namespace mf::simd

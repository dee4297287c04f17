// Decode GEMV: each weight is read once and reused for all M activation rows, so W is streamed in
// its stored format and dequantized in registers (AVX-512: F32/F16/BF16/Q8_0/Q4_0/Q4_1). Other
// formats, or a build without AVX-512, dequantize one row at a time into scratch.
#include "kernels/cpu/gemv.h"


#include <algorithm>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "core/work_pool.h"
#include "kernels/cpu/row_decode.h"
#include "kernels/cpu/simd.h"

namespace mf::detail {

namespace {

// Output rows are handed out in chunks of this many so each thread streams a contiguous
// stretch of W (and the pairs of rows the kernels interleave stay together).
constexpr int64_t kRowChunk = 16;

float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
#if defined(__F16C__)
  return _cvtsh_ss(h);  // one instruction; the portable conversion branches per block scale
#else
  return fp16_to_f32(h);
#endif
}

// Any format: dequantize one W row into per-thread fp32 scratch, then dot it with each x row.
// thread_local because the scratch is per thread and reused across calls (a row of K floats;
// allocating it per call would put malloc in the decode loop).
void generic_rows(const float* x, int64_t M, int64_t K, DType t, const uint8_t* w,
                  size_t row_bytes, int64_t n0, int64_t n1, float* y, int64_t N) {
  thread_local std::vector<float> row;
  if (row.size() < size_t(K)) row.resize(size_t(K));
  for (int64_t n = n0; n < n1; ++n) {
    decode_row(t, w + size_t(n) * row_bytes, row.data(), K);
    for (int64_t r = 0; r < M; ++r) y[r * N + n] = simd::dot(x + r * K, row.data(), K);
  }
}

#if defined(__AVX512F__)

// Per-format decoders of one 32-weight step into two 16-lane fp32 vectors. Quantized formats
// also give the block scale d (and Q4_1 its offset m), which the kernel applies once per
// block: d * sum(q_i x_i) (+ m * sum(x_i)) equals sum((d q_i + m) x_i) up to rounding.
struct Q4_0Fmt {
  static constexpr int kBytes = sizeof(BlockQ4_0);
  static constexpr bool kScaled = true, kHasMin = false;
  static void decode(const uint8_t* p, __m512& lo, __m512& hi, float& d, float&) {
    d = half_at(p);
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2));
    const __m128i low4 = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
    const __m128i ql = _mm_sub_epi8(_mm_and_si128(raw, low4), eight);
    const __m128i qh = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(raw, 4), low4), eight);
    lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(ql));
    hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(qh));
  }
};

struct Q4_1Fmt {
  static constexpr int kBytes = sizeof(BlockQ4_1);
  static constexpr bool kScaled = true, kHasMin = true;
  static void decode(const uint8_t* p, __m512& lo, __m512& hi, float& d, float& m) {
    d = half_at(p);
    m = half_at(p + 2);
    // One widening of the 16 bytes (the shuffle port is the bottleneck), then both nibbles
    // come out of each 32-bit lane: byte j holds element j (low) and element j + 16 (high).
    const __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 4)));
    lo = _mm512_cvtepi32_ps(_mm512_and_si512(b, _mm512_set1_epi32(0x0f)));
    hi = _mm512_cvtepi32_ps(_mm512_srli_epi32(b, 4));
  }
};

struct Q8_0Fmt {
  static constexpr int kBytes = sizeof(BlockQ8_0);
  static constexpr bool kScaled = true, kHasMin = false;
  static void decode(const uint8_t* p, __m512& lo, __m512& hi, float& d, float&) {
    d = half_at(p);
    lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2))));
    hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 18))));
  }
};

struct F32Fmt {
  static constexpr int kBytes = 128;
  static constexpr bool kScaled = false, kHasMin = false;
  static void decode(const uint8_t* p, __m512& lo, __m512& hi, float&, float&) {
    lo = _mm512_loadu_ps(reinterpret_cast<const float*>(p));
    hi = _mm512_loadu_ps(reinterpret_cast<const float*>(p + 64));
  }
};

struct F16Fmt {
  static constexpr int kBytes = 64;
  static constexpr bool kScaled = false, kHasMin = false;
  static void decode(const uint8_t* p, __m512& lo, __m512& hi, float&, float&) {
    lo = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    hi = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32)));
  }
};

struct BF16Fmt {
  static constexpr int kBytes = 64;
  static constexpr bool kScaled = false, kHasMin = false;
  static __m512 widen(const uint8_t* p) {
    __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
  }
  static void decode(const uint8_t* p, __m512& lo, __m512& hi, float&, float&) {
    lo = widen(p);
    hi = widen(p + 32);
  }
};

// Two W rows at a time (two independent FMA chains per x row hide FMA latency), MR x rows
// per W row so each decoded block is reused MR times. Steps of 32 weights; for the float
// formats a K that is not a multiple of 32 leaves a tail, finished in scalar code.
// xsum[r * nb + b] is the sum of x row r over block b (only read by Q4_1).
template <class F, int MR>
void rows_kernel(const float* x, int64_t K, const uint8_t* w, size_t row_bytes, const float* xsum,
                 int64_t n0, int64_t n1, float* y, int64_t N, DType t) {
  const int64_t steps = K / 32;
  for (int64_t n = n0; n < n1; n += 2) {
    const bool pair = n + 1 < n1;
    const uint8_t* w0 = w + size_t(n) * row_bytes;
    const uint8_t* w1 = pair ? w0 + row_bytes : w0;
    __m512 acc0[MR], acc1[MR];
    float min0[MR], min1[MR];
    for (int r = 0; r < MR; ++r) {
      acc0[r] = acc1[r] = _mm512_setzero_ps();
      min0[r] = min1[r] = 0.0f;
    }
    for (int64_t s = 0; s < steps; ++s) {
      __m512 lo0, hi0, lo1, hi1;
      float d0 = 1, m0 = 0, d1 = 1, m1 = 0;
      F::decode(w0 + s * F::kBytes, lo0, hi0, d0, m0);
      F::decode(w1 + s * F::kBytes, lo1, hi1, d1, m1);
      for (int r = 0; r < MR; ++r) {
        const float* xr = x + r * K + s * 32;
        const __m512 xl = _mm512_loadu_ps(xr), xh = _mm512_loadu_ps(xr + 16);
        if constexpr (F::kScaled) {
          const __m512 p0 = _mm512_fmadd_ps(hi0, xh, _mm512_mul_ps(lo0, xl));
          const __m512 p1 = _mm512_fmadd_ps(hi1, xh, _mm512_mul_ps(lo1, xl));
          acc0[r] = _mm512_fmadd_ps(p0, _mm512_set1_ps(d0), acc0[r]);
          acc1[r] = _mm512_fmadd_ps(p1, _mm512_set1_ps(d1), acc1[r]);
          if constexpr (F::kHasMin) {
            min0[r] += m0 * xsum[r * steps + s];
            min1[r] += m1 * xsum[r * steps + s];
          }
        } else {
          acc0[r] = _mm512_fmadd_ps(hi0, xh, _mm512_fmadd_ps(lo0, xl, acc0[r]));
          acc1[r] = _mm512_fmadd_ps(hi1, xh, _mm512_fmadd_ps(lo1, xl, acc1[r]));
        }
      }
    }
    float tail0[MR] = {}, tail1[MR] = {};
    if (!F::kScaled && steps * 32 < K) {
      // At most 31 trailing weights of a float format: decode them one by one.
      thread_local float wt[2][32];
      const int64_t done = steps * 32, left = K - done;
      const size_t elem = row_bytes / size_t(K);
      decode_row(t, w0 + size_t(done) * elem, wt[0], left);
      decode_row(t, w1 + size_t(done) * elem, wt[1], left);
      for (int r = 0; r < MR; ++r) {
        tail0[r] = simd::dot(x + r * K + done, wt[0], left);
        tail1[r] = simd::dot(x + r * K + done, wt[1], left);
      }
    }
    for (int r = 0; r < MR; ++r) {
      y[r * N + n] = _mm512_reduce_add_ps(acc0[r]) + min0[r] + tail0[r];
      if (pair) y[r * N + n + 1] = _mm512_reduce_add_ps(acc1[r]) + min1[r] + tail1[r];
    }
  }
}

template <class F>
void rows_dispatch(const float* x, int64_t M, int64_t K, const uint8_t* w, size_t row_bytes,
                   const float* xsum, int64_t n0, int64_t n1, float* y, int64_t N, DType t) {
  switch (M) {
    case 1: return rows_kernel<F, 1>(x, K, w, row_bytes, xsum, n0, n1, y, N, t);
    case 2: return rows_kernel<F, 2>(x, K, w, row_bytes, xsum, n0, n1, y, N, t);
    case 3: return rows_kernel<F, 3>(x, K, w, row_bytes, xsum, n0, n1, y, N, t);
    case 4: return rows_kernel<F, 4>(x, K, w, row_bytes, xsum, n0, n1, y, N, t);
    case 5: return rows_kernel<F, 5>(x, K, w, row_bytes, xsum, n0, n1, y, N, t);
    case 6: return rows_kernel<F, 6>(x, K, w, row_bytes, xsum, n0, n1, y, N, t);
    case 7: return rows_kernel<F, 7>(x, K, w, row_bytes, xsum, n0, n1, y, N, t);
    default: return rows_kernel<F, 8>(x, K, w, row_bytes, xsum, n0, n1, y, N, t);
  }
}

#endif  // __AVX512F__

}  // namespace

void gemv_rows(const float* x, int64_t M, int64_t K, DType t, const void* w_, int64_t N, float* y) {
  MF_CHECK(M >= 1 && M <= 8, "gemv_rows: M must be in [1, 8], got ", M);
  const auto* w = static_cast<const uint8_t*>(w_);
  const size_t row_bytes = dtype_bytes(t, K);
  using RowsFn = void (*)(const float*, int64_t, int64_t, const uint8_t*, size_t, const float*,
                          int64_t, int64_t, float*, int64_t, DType);
  RowsFn fn = nullptr;
  const float* xsum = nullptr;
#if defined(__AVX512F__)
  switch (t) {
    case DType::F32: fn = rows_dispatch<F32Fmt>; break;
    case DType::F16: fn = rows_dispatch<F16Fmt>; break;
    case DType::BF16: fn = rows_dispatch<BF16Fmt>; break;
    case DType::Q8_0: fn = rows_dispatch<Q8_0Fmt>; break;
    case DType::Q4_0: fn = rows_dispatch<Q4_0Fmt>; break;
    case DType::Q4_1: fn = rows_dispatch<Q4_1Fmt>; break;
    default: break;
  }
  // Q4_1's offset term m * sum(x over the block): the block sums depend only on x, so they
  // are computed once here instead of once per weight row. thread_local: reused across
  // calls with no allocation once it has grown to the largest M*K/32 seen.
  thread_local std::vector<float> block_sums;
  if (t == DType::Q4_1) {
    const int64_t nb = K / 32;
    if (block_sums.size() < size_t(M * nb)) block_sums.resize(size_t(M * nb));
    for (int64_t r = 0; r < M; ++r)
      for (int64_t b = 0; b < nb; ++b) {
        __m512 s = _mm512_add_ps(_mm512_loadu_ps(x + r * K + b * 32),
                                 _mm512_loadu_ps(x + r * K + b * 32 + 16));
        block_sums[size_t(r * nb + b)] = _mm512_reduce_add_ps(s);
      }
    xsum = block_sums.data();
  }
#endif
  auto rows = [&](int64_t n0, int64_t n1) {
    if (fn)
      fn(x, M, K, w, row_bytes, xsum, n0, n1, y, N, t);
    else
      generic_rows(x, M, K, t, w, row_bytes, n0, n1, y, N);
  };
  // Tiny layers are not worth waking the other threads.
  if (N * K < (1 << 14)) return rows(0, N);
  const int64_t blocks = (N + kRowChunk - 1) / kRowChunk;
  const int64_t per = chunk_size(blocks, std::max<int64_t>(1, 32768 / (kRowChunk * K * M)));
  parallel_chunks((blocks + per - 1) / per, [&](int64_t c, int) {
    rows(c * per * kRowChunk, std::min(N, (c + 1) * per * kRowChunk));
  });
}

}  // namespace mf::detail

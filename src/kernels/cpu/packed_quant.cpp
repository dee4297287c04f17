// Repacking and AVX-512 kernels of PackedQuantMatrix. Each kernel is a template over the format
// and the activation row count (1..8) so its accumulators stay in registers; a group of 16 output
// rows is the unit of parallel work, and runs every 8-row block of the batch over its weights. Without AVX-512 VNNI they compile out and supports() is false.
#include "kernels/cpu/packed_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/work_pool.h"
#include "kernels/cpu/row_decode.h"

#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512F__)
#define MF_HAVE_PACKED_Q8 1
#include <immintrin.h>
// GCC 12 flags the undefined pass-through operand inside its own AVX-512 conversion
// intrinsics as uninitialised (GCC bug 105593, fixed in GCC 13).
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#endif

namespace mf {

namespace {

constexpr int kGroup = 16;  // output rows per 512-bit register (16 int32 lanes)
constexpr int64_t kRowsPerCall = 8;  // activation rows one kernel call keeps in registers

// Activation rows quantized to int8 per block of 32 (x ~ scale * q), with each block's sum of
// q (Q4_0's -8 offset, Q4_1's minimum). `u` is q + 128 as unsigned bytes: vpdpbusd wants one
// unsigned operand, and for Q8_0 both sides are signed. Stored block-major (block b of row r at
// b * rows + r), so a kernel reaches the rows of one block at fixed offsets from one pointer.
struct ActivationsQ8 {
  int64_t rows = 0;
  std::vector<int8_t> q;
  std::vector<uint8_t> u;
  std::vector<float> scale;
  std::vector<int32_t> qsum;
  std::vector<float> scaled_qsum;  // scale * qsum, what Q4_1's minimum multiplies
};

#ifdef MF_HAVE_PACKED_Q8

// Rounds half to even (the default MXCSR mode of _mm512_cvtps_epi32), as nearbyint does.
void quantize_activations(const float* x, int64_t M, int64_t K, ActivationsQ8& a) {
  const int64_t nb = K / 32;
  a.rows = M;
  a.q.resize(size_t(M * K));
  a.u.resize(size_t(M * K));
  a.scale.resize(size_t(M * nb));
  a.qsum.resize(size_t(M * nb));
  a.scaled_qsum.resize(size_t(M * nb));
  const __m512 sign_off = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  for (int64_t r = 0; r < M; ++r)
    for (int64_t b = 0; b < nb; ++b) {
      const float* v = x + r * K + b * 32;
      const size_t at = size_t(b * M + r);
      const __m512 v0 = _mm512_loadu_ps(v), v1 = _mm512_loadu_ps(v + 16);
      const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_and_ps(v0, sign_off), _mm512_and_ps(v1, sign_off)));
      const float d = amax / 127.0f;
      const __m512 id = _mm512_set1_ps(d > 0 ? 1.0f / d : 0.0f);
      const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, id)), q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, id));
      const __m128i b0 = _mm512_cvtsepi32_epi8(q0), b1 = _mm512_cvtsepi32_epi8(q1);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(a.q.data() + at * 32), b0);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(a.q.data() + at * 32 + 16), b1);
      const __m128i bias = _mm_set1_epi8(char(0x80));  // q + 128 as a byte: flip the sign bit
      _mm_storeu_si128(reinterpret_cast<__m128i*>(a.u.data() + at * 32), _mm_xor_si128(b0, bias));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(a.u.data() + at * 32 + 16), _mm_xor_si128(b1, bias));
      const int32_t qs = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
      a.scale[at] = d;
      a.qsum[at] = qs;
      a.scaled_qsum[at] = d * float(qs);
    }
}
#endif  // MF_HAVE_PACKED_Q8

size_t record_bytes_for(DType t) {
  switch (t) {
    case DType::Q4_0: return 32 + 4 * 64;
    case DType::Q4_1: return 32 + 32 + 4 * 64;
    case DType::Q8_0: return 32 + 32 + 8 * 64;
    default: fail("PackedQuantMatrix: no packed layout for ", dtype_name(t));
  }
}

#ifdef MF_HAVE_PACKED_Q8

inline __m512i bcast4(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// One group of 16 output rows over all blocks, for MR activation rows.
// Activation rows r0 .. r0 + MR - 1 of `a`; y points at output row r0.
template <DType T, int MR>
void group_kernel(const uint8_t* rec, size_t record_bytes, int64_t nb, int64_t K, const ActivationsQ8& a,
                  int64_t r0, float* y, int64_t N, int64_t n0, int live) {
  __m512 acc[MR];
  for (int r = 0; r < MR; ++r) acc[r] = _mm512_setzero_ps();
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  for (int64_t b = 0; b < nb; ++b, rec += record_bytes) {
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec)));
    if constexpr (T == DType::Q8_0) {
      const __m512i wsum128 = _mm512_slli_epi32(
          _mm512_cvtepi16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + 32))), 7);
      const uint8_t* qs = rec + 64;
      __m512i w[8];
      for (int c = 0; c < 8; ++c) w[c] = _mm512_loadu_si512(qs + 64 * c);
      // Unrolled so that acc[] stays in registers (GCC otherwise keeps it on the stack here).
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const uint8_t* xu = a.u.data() + size_t(b * a.rows + r0 + r) * 32;
        __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
        for (int c = 0; c < 8; c += 2) {
          s0 = _mm512_dpbusd_epi32(s0, bcast4(xu + 4 * c), w[c]);
          s1 = _mm512_dpbusd_epi32(s1, bcast4(xu + 4 * c + 4), w[c + 1]);
        }
        // sum((xq + 128) * w) - 128 * sum(w) = sum(xq * w)
        const __m512i s = _mm512_sub_epi32(_mm512_add_epi32(s0, s1), wsum128);
        const __m512 scale = _mm512_mul_ps(d, _mm512_set1_ps(a.scale[size_t(b * a.rows + r0 + r)]));
        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale, acc[r]);
      }
    } else {
      constexpr bool kMin = T == DType::Q4_1;
      const __m512 m = kMin ? _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + 32)))
                            : _mm512_setzero_ps();
      const uint8_t* qs = rec + (kMin ? 64 : 32);
      __m512i lo[4], hi[4];
      for (int c = 0; c < 4; ++c) {
        const __m512i v = _mm512_loadu_si512(qs + 64 * c);
        lo[c] = _mm512_and_si512(v, low4);
        hi[c] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
      }
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const int8_t* xq = a.q.data() + size_t(b * a.rows + r0 + r) * 32;
        __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
        for (int c = 0; c < 4; ++c) {
          s0 = _mm512_dpbusd_epi32(s0, lo[c], bcast4(xq + 4 * c));
          s1 = _mm512_dpbusd_epi32(s1, hi[c], bcast4(xq + 16 + 4 * c));
        }
        __m512i s = _mm512_add_epi32(s0, s1);
        const size_t ab = size_t(b * a.rows + r0 + r);
        if constexpr (!kMin) s = _mm512_sub_epi32(s, _mm512_set1_epi32(8 * a.qsum[ab]));  // nibble - 8
        const __m512 scale = _mm512_mul_ps(d, _mm512_set1_ps(a.scale[ab]));
        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale, acc[r]);
        // The minimum meets the sum of the *quantized* activations: the dot above is of uncentred
        // nibbles (0..15), so only this pairing cancels the large common offset d*q ~ -m
        // exactly, leaving the error of the centred weights d*q + m (as llama.cpp's Q8_1).
        if constexpr (kMin) acc[r] = _mm512_fmadd_ps(m, _mm512_set1_ps(a.scaled_qsum[ab]), acc[r]);
      }
    }
  }
  const __mmask16 mask = __mmask16((1u << live) - 1u);
  for (int r = 0; r < MR; ++r) _mm512_mask_storeu_ps(y + r * N + n0, mask, acc[r]);
}

// The exact path over the same records: each weight of 16 rows becomes a float through a
// 16-entry table (vpermps reads only the low 4 bits of each lane's index, so a shift is all
// the unpacking a nibble needs), then one FMA with the broadcast activation. Per block:
// acc += d * sum(q x) (+ m * sum(x) for Q4_1), as the row-major exact kernel computes it.
template <DType T, int MR>
void group_kernel_f32(const uint8_t* rec, size_t record_bytes, int64_t nb, int64_t K, const float* x,
                      const float* xsum, float* y, int64_t N, int64_t n0, int live) {
  __m512 acc[MR];
  for (int r = 0; r < MR; ++r) acc[r] = _mm512_setzero_ps();
  // Q4_0 stores q + 8: its table holds q - 8 directly. Q4_1's holds q.
  const __m512 table = T == DType::Q4_0 ? _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7)
                                        : _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int64_t b = 0; b < nb; ++b, rec += record_bytes) {
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec)));
    // Two partial sums per activation row (low and high halves of the block) halve the FMA
    // dependency chains; blocks are independent, so out-of-order execution overlaps them.
    __m512 lo_sum[MR], hi_sum[MR];
    for (int r = 0; r < MR; ++r) lo_sum[r] = hi_sum[r] = _mm512_setzero_ps();
    if constexpr (T == DType::Q8_0) {
      const uint8_t* qs = rec + 64;
      for (int c = 0; c < 8; ++c) {
        const __m512i v = _mm512_loadu_si512(qs + 64 * c);
        for (int t = 0; t < 4; ++t) {
          // Byte t of each lane, sign-extended: shift it to the top, then arithmetic-shift down.
          const __m512 w = _mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(v, 24 - 8 * t), 24));
          for (int r = 0; r < MR; ++r) {
            const __m512 xv = _mm512_set1_ps(x[r * K + b * 32 + 4 * c + t]);
            if (c < 4) lo_sum[r] = _mm512_fmadd_ps(w, xv, lo_sum[r]);
            else hi_sum[r] = _mm512_fmadd_ps(w, xv, hi_sum[r]);
          }
        }
      }
      for (int r = 0; r < MR; ++r) acc[r] = _mm512_fmadd_ps(_mm512_add_ps(lo_sum[r], hi_sum[r]), d, acc[r]);
    } else {
      constexpr bool kMin = T == DType::Q4_1;
      const uint8_t* qs = rec + (kMin ? 64 : 32);
      for (int c = 0; c < 4; ++c) {
        const __m512i v = _mm512_loadu_si512(qs + 64 * c);
        for (int t = 0; t < 4; ++t) {
          const __m512 wl = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 8 * t), table);
          const __m512 wh = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 8 * t + 4), table);
          for (int r = 0; r < MR; ++r) {
            const float* xb = x + r * K + b * 32;
            lo_sum[r] = _mm512_fmadd_ps(wl, _mm512_set1_ps(xb[4 * c + t]), lo_sum[r]);
            hi_sum[r] = _mm512_fmadd_ps(wh, _mm512_set1_ps(xb[16 + 4 * c + t]), hi_sum[r]);
          }
        }
      }
      const __m512 m = kMin ? _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + 32)))
                            : _mm512_setzero_ps();
      for (int r = 0; r < MR; ++r) {
        acc[r] = _mm512_fmadd_ps(_mm512_add_ps(lo_sum[r], hi_sum[r]), d, acc[r]);
        if constexpr (kMin) acc[r] = _mm512_fmadd_ps(m, _mm512_set1_ps(xsum[r * nb + b]), acc[r]);
      }
    }
  }
  const __mmask16 mask = __mmask16((1u << live) - 1u);
  for (int r = 0; r < MR; ++r) _mm512_mask_storeu_ps(y + r * N + n0, mask, acc[r]);
}

template <DType T>
using GroupFnF32 = void (*)(const uint8_t*, size_t, int64_t, int64_t, const float*, const float*, float*, int64_t,
                            int64_t, int);

template <DType T>
GroupFnF32<T> group_fn_f32(int64_t M) {
  switch (M) {
    case 1: return group_kernel_f32<T, 1>;
    case 2: return group_kernel_f32<T, 2>;
    case 3: return group_kernel_f32<T, 3>;
    case 4: return group_kernel_f32<T, 4>;
    case 5: return group_kernel_f32<T, 5>;
    case 6: return group_kernel_f32<T, 6>;
    case 7: return group_kernel_f32<T, 7>;
    default: return group_kernel_f32<T, 8>;
  }
}

// Calls work(group_data, n0, live_rows) for the groups of 16 output rows in [g0, g1).
template <class Work>
void for_each_group(const uint8_t* data, size_t group_bytes, int64_t g0, int64_t g1, int64_t N, const Work& work) {
  for (int64_t g = g0; g < g1; ++g) {
    const int64_t n0 = g * kGroup;
    work(data + size_t(g) * group_bytes, n0, int(std::min<int64_t>(kGroup, N - n0)));
  }
}

// Each group's weights (a few KiB) are read once for all M rows, 8 rows per kernel call, while
// they sit in L1: a batch of 32 rows streams the matrix once, not four times.
template <DType T>
void run_groups_f32(const uint8_t* data, size_t record_bytes, int64_t g0, int64_t g1, int64_t nb, int64_t K, int64_t M,
                    const float* x, const float* xsum, float* y, int64_t N) {
  const GroupFnF32<T> full = group_fn_f32<T>(kRowsPerCall), tail = group_fn_f32<T>(M % kRowsPerCall);
  for_each_group(data, record_bytes * size_t(nb), g0, g1, N, [&](const uint8_t* g, int64_t n0, int live) {
    for (int64_t r0 = 0; r0 < M; r0 += kRowsPerCall)
      (M - r0 >= kRowsPerCall ? full : tail)(g, record_bytes, nb, K, x + r0 * K, xsum ? xsum + r0 * nb : nullptr,
                                             y + r0 * N, N, n0, live);
  });
}

template <DType T>
using GroupFn = void (*)(const uint8_t*, size_t, int64_t, int64_t, const ActivationsQ8&, int64_t, float*, int64_t,
                         int64_t, int);

template <DType T>
GroupFn<T> group_fn(int64_t M) {
  switch (M) {
    case 1: return group_kernel<T, 1>;
    case 2: return group_kernel<T, 2>;
    case 3: return group_kernel<T, 3>;
    case 4: return group_kernel<T, 4>;
    case 5: return group_kernel<T, 5>;
    case 6: return group_kernel<T, 6>;
    case 7: return group_kernel<T, 7>;
    default: return group_kernel<T, 8>;
  }
}

template <DType T>
void run_groups(const uint8_t* data, size_t record_bytes, int64_t g0, int64_t g1, int64_t nb, int64_t K, int64_t M,
                const ActivationsQ8& a, float* y, int64_t N) {
  const GroupFn<T> full = group_fn<T>(kRowsPerCall), tail = group_fn<T>(M % kRowsPerCall);
  for_each_group(data, record_bytes * size_t(nb), g0, g1, N, [&](const uint8_t* g, int64_t n0, int live) {
    for (int64_t r0 = 0; r0 < M; r0 += kRowsPerCall)
      (M - r0 >= kRowsPerCall ? full : tail)(g, record_bytes, nb, K, a, r0, y + r0 * N, N, n0, live);
  });
}

#endif  // MF_HAVE_PACKED_Q8

}  // namespace

bool PackedQuantMatrix::supports(const Tensor& w) {
#ifdef MF_HAVE_PACKED_Q8
  const DType t = w.dtype();
  return w.ndim() == 2 && w.dim(1) % 32 == 0 && w.dim(0) > 0 &&
         (t == DType::Q4_0 || t == DType::Q4_1 || t == DType::Q8_0);
#else
  (void)w;
  return false;
#endif
}

PackedQuantMatrix::PackedQuantMatrix(const Tensor& w) : dtype_(w.dtype()) {
  MF_CHECK(supports(w), "PackedQuantMatrix: cannot pack a ", dtype_name(w.dtype()), " tensor of shape ",
           shape_str(w.shape()), " (Q4_0/Q4_1/Q8_0 [N, K] with K % 32 == 0 and an AVX-512 VNNI build)");
  N_ = w.dim(0);
  K_ = w.dim(1);
  blocks_ = K_ / 32;
  groups_ = (N_ + kGroup - 1) / kGroup;
  record_bytes_ = record_bytes_for(dtype_);
  size_ = record_bytes_ * size_t(blocks_) * size_t(groups_);
  // Not zeroed here: every record is written by pack_group (the last group's padding rows too).
  storage_ = std::make_unique_for_overwrite<uint8_t[]>(size_ + 63);
  data_ = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(storage_.get()) + 63) & ~uintptr_t(63));
  const auto* src = static_cast<const uint8_t*>(w.raw());
  const size_t row_bytes = dtype_bytes(dtype_, K_);
  const size_t block_bytes = row_bytes / size_t(blocks_);
  // Groups are independent: packed in parallel (a MoE packs each expert the first time a decode
  // step routes to it, so this runs inside decode).
  const int64_t per = chunk_size(groups_, 4);
  parallel_chunks((groups_ + per - 1) / per, [&](int64_t chunk, int) {
    for (int64_t g = chunk * per; g < std::min(groups_, (chunk + 1) * per); ++g)
      pack_group(src, row_bytes, block_bytes, g);
  });
}

void PackedQuantMatrix::pack_group(const uint8_t* src, size_t row_bytes, size_t block_bytes, int64_t g) {
  // A last group with fewer than 16 rows: its padding rows are zero weights (scales 0).
  if ((g + 1) * kGroup > N_) std::memset(data_ + size_t(g) * size_t(blocks_) * record_bytes_, 0, size_t(blocks_) * record_bytes_);
  for (int64_t b = 0; b < blocks_; ++b) {
    uint8_t* rec = data_ + (size_t(g) * size_t(blocks_) + size_t(b)) * record_bytes_;
    for (int j = 0; j < kGroup; ++j) {
      const int64_t n = g * kGroup + j;
      if (n >= N_) break;
      const uint8_t* blk = src + size_t(n) * row_bytes + size_t(b) * block_bytes;
      std::memcpy(rec + 2 * j, blk, 2);  // d (fp16)
      if (dtype_ == DType::Q8_0) {
        const auto* q = reinterpret_cast<const int8_t*>(blk + 2);
        int16_t sum = 0;
        for (int i = 0; i < 32; ++i) sum = int16_t(sum + q[i]);
        std::memcpy(rec + 32 + 2 * j, &sum, 2);
        for (int c = 0; c < 8; ++c) std::memcpy(rec + 64 + 64 * c + 4 * j, q + 4 * c, 4);
      } else {
        const bool has_min = dtype_ == DType::Q4_1;
        if (has_min) std::memcpy(rec + 32 + 2 * j, blk + 2, 2);  // m (fp16)
        const uint8_t* qs = blk + (has_min ? 4 : 2);
        uint8_t* chunks = rec + (has_min ? 64 : 32);
        for (int c = 0; c < 4; ++c) std::memcpy(chunks + 64 * c + 4 * j, qs + 4 * c, 4);
      }
    }
  }
}

struct PackedActivations::Data {
  const float* x = nullptr;
  int64_t rows = 0, cols = 0;
  DecodeActivations kind = DecodeActivations::fp32;
  std::vector<float> xsum;  // fp32 path: each block's exact activation sum (Q4_1's minimum)
  ActivationsQ8 q8;         // int8 path
};

PackedActivations::PackedActivations() : d_(std::make_unique<Data>()) {}
PackedActivations::~PackedActivations() = default;
int64_t PackedActivations::rows() const { return d_->rows; }
int64_t PackedActivations::cols() const { return d_->cols; }
DecodeActivations PackedActivations::kind() const { return d_->kind; }

void PackedActivations::prepare(const float* x, int64_t M, int64_t K, DecodeActivations kind) {
  MF_CHECK(M >= 1 && M <= PackedQuantMatrix::kMaxRows, "PackedActivations: M must be in [1, ",
           PackedQuantMatrix::kMaxRows, "], got ", M);
  MF_CHECK(K > 0 && K % 32 == 0, "PackedActivations: K=", K, " is not a positive multiple of 32");
  MF_CHECK(x != nullptr, "PackedActivations: null input");
  Data& d = *d_;
  d.x = x;
  d.rows = M;
  d.cols = K;
  d.kind = kind;
#ifdef MF_HAVE_PACKED_Q8
  const int64_t nb = K / 32;
  if (kind == DecodeActivations::int8) {
    quantize_activations(x, M, K, d.q8);
    return;
  }
  d.xsum.resize(size_t(M * nb));
  for (int64_t r = 0; r < M; ++r)
    for (int64_t b = 0; b < nb; ++b) {
      const float* v = x + r * K + b * 32;
      const __m512 s = _mm512_add_ps(_mm512_loadu_ps(v), _mm512_loadu_ps(v + 16));
      d.xsum[size_t(r * nb + b)] = _mm512_reduce_add_ps(s);
    }
#endif
}

int64_t PackedQuantMatrix::groups_per_chunk(int64_t rows) const {
  // At least ~32k multiply-adds per chunk (~0.5-1 us on one core), far more than a claim costs.
  const int64_t min_groups = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, kGroup * K_ * rows));
  return chunk_size(groups_, min_groups);
}

void PackedQuantMatrix::multiply_groups(const PackedActivations& a, int64_t g0, int64_t g1, float* y) const {
  const PackedActivations::Data& d = *a.d_;
  MF_CHECK(d.cols == K_ && d.rows >= 1, "PackedQuantMatrix: activations of width ", d.cols, " for a matrix of width ",
           K_);
  MF_CHECK(g0 >= 0 && g0 <= g1 && g1 <= groups_, "PackedQuantMatrix: group range [", g0, ", ", g1, ") outside [0, ",
           groups_, ")");
#ifdef MF_HAVE_PACKED_Q8
  const int64_t M = d.rows;
  if (d.kind == DecodeActivations::int8) {
    switch (dtype_) {
      case DType::Q4_0: return run_groups<DType::Q4_0>(data_, record_bytes_, g0, g1, blocks_, K_, M, d.q8, y, N_);
      case DType::Q4_1: return run_groups<DType::Q4_1>(data_, record_bytes_, g0, g1, blocks_, K_, M, d.q8, y, N_);
      case DType::Q8_0: return run_groups<DType::Q8_0>(data_, record_bytes_, g0, g1, blocks_, K_, M, d.q8, y, N_);
      default: break;
    }
  } else {
    switch (dtype_) {
      case DType::Q4_0:
        return run_groups_f32<DType::Q4_0>(data_, record_bytes_, g0, g1, blocks_, K_, M, d.x, nullptr, y, N_);
      case DType::Q4_1:
        return run_groups_f32<DType::Q4_1>(data_, record_bytes_, g0, g1, blocks_, K_, M, d.x, d.xsum.data(), y, N_);
      case DType::Q8_0:
        return run_groups_f32<DType::Q8_0>(data_, record_bytes_, g0, g1, blocks_, K_, M, d.x, nullptr, y, N_);
      default: break;
    }
  }
#else
  (void)y;
#endif
  fail("PackedQuantMatrix: no kernel for ", dtype_name(dtype_), " in this build");
}

void PackedQuantMatrix::multiply(const PackedActivations& a, float* y) const {
  MF_CHECK(y != nullptr, "PackedQuantMatrix: null output");
  // Tiny matrices are not worth waking the other threads.
  if (N_ * K_ < (1 << 14)) return multiply_groups(a, 0, groups_, y);
  const int64_t per = groups_per_chunk(a.rows());
  parallel_chunks((groups_ + per - 1) / per, [&](int64_t c, int) {
    multiply_groups(a, c * per, std::min(groups_, (c + 1) * per), y);
  });
}

void PackedQuantMatrix::gemv_f32(const float* x, int64_t M, float* y) const {
  MF_CHECK(M >= 1 && M <= kMaxRows, "PackedQuantMatrix::gemv_f32: M must be in [1, ", kMaxRows, "], got ", M);
  MF_CHECK(x != nullptr && y != nullptr, "PackedQuantMatrix::gemv_f32: null input or output");
  thread_local PackedActivations a;  // reused across calls: no allocation in the decode loop once grown
  a.prepare(x, M, K_, DecodeActivations::fp32);
  multiply(a, y);
}

void PackedQuantMatrix::gemv_int8(const float* x, int64_t M, float* y) const {
  MF_CHECK(M >= 1 && M <= kMaxRows, "PackedQuantMatrix::gemv_int8: M must be in [1, ", kMaxRows, "], got ", M);
  MF_CHECK(x != nullptr && y != nullptr, "PackedQuantMatrix::gemv_int8: null input or output");
  thread_local PackedActivations a;
  a.prepare(x, M, K_, DecodeActivations::int8);
  multiply(a, y);
}

}  // namespace mf

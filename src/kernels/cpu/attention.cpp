#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "core/work_pool.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/row_decode.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/softmax.h"

namespace mf {

namespace {

// How a KV cache stores its elements (CacheRows::type): fp32 as is, or 16-bit, widened on load.
struct F16Element { uint16_t bits; };
struct BF16Element { uint16_t bits; };

inline float to_f32(float x) { return x; }
inline float to_f32(F16Element x) { return fp16_to_f32(x.bits); }
inline float to_f32(BF16Element x) { return bf16_to_f32(x.bits); }

#if defined(__AVX512F__)
inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 load16(const F16Element* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline __m512 load16(const BF16Element* p) {  // bf16 is the top half of an fp32
  return _mm512_castsi512_ps(
      _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
}
#endif

// Largest head_dim a 16-bit cache supports: its rows outside the vectorised paths are widened into
// a stack buffer of this many floats, so they go through the very fp32 routines an F32 cache does
// (a row's result is then bit for bit the F32 cache's on the rounded values).
constexpr int kMaxWidenedHeadDim = 1024;

// n elements to fp32 (16 at a time where the vector loads apply).
template <class E>
void widen(const E* x, float* out, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, load16(x + i));
#endif
  for (; i < n; ++i) out[i] = to_f32(x[i]);
}

template <class E>
float dot_row(const float* q, const E* k, int64_t n) {
  if constexpr (std::is_same_v<E, float>) {
    return simd::dot(q, k, n);
  } else {
    float wide[kMaxWidenedHeadDim];
    widen(k, wide, n);
    return simd::dot(q, wide, n);
  }
}

template <class E>
void axpy_row(float a, const E* v, float* y, int64_t n) {
  if constexpr (std::is_same_v<E, float>) {
    simd::axpy(a, v, y, n);
  } else {
    float wide[kMaxWidenedHeadDim];
    widen(v, wide, n);
    simd::axpy(a, wide, y, n);
  }
}

#if defined(__AVX512F__)
// o[g] = sum over s of e[g * kSplitKeys + s] * v[s] for G query heads of head_dim 16 * C, in one pass
// over the value rows: each row is loaded once, and the G * C accumulators (G and C known at compile
// time) stay in registers; each head's sum runs in key order, as axpy_row's would.
template <int G, int C, class VE>
void accumulate_values(const float* e, int64_t e_stride, const VE* v, int64_t kv_stride, int64_t len, float* o,
                       int head_dim) {
  __m512 acc[G][C];
  for (int g = 0; g < G; ++g)
    for (int c = 0; c < C; ++c) acc[g][c] = _mm512_setzero_ps();
  for (int64_t s = 0; s < len; ++s) {
    const VE* vr = v + s * kv_stride;
    __m512 row[C];
    for (int c = 0; c < C; ++c) {
      // Rows sit kv_stride apart, a pattern the hardware prefetchers miss: ask for a later one now.
      _mm_prefetch(reinterpret_cast<const char*>(vr + 8 * kv_stride + 16 * c), _MM_HINT_T0);
      row[c] = load16(vr + 16 * c);
    }
    for (int g = 0; g < G; ++g) {
      const __m512 p = _mm512_set1_ps(e[g * e_stride + s]);
      for (int c = 0; c < C; ++c) acc[g][c] = _mm512_fmadd_ps(p, row[c], acc[g][c]);
    }
  }
  for (int g = 0; g < G; ++g)
    for (int c = 0; c < C; ++c) _mm512_storeu_ps(o + int64_t(g) * head_dim + 16 * c, acc[g][c]);
}
#endif

// From this many queries on, one GEMM per head (QK^T, then PV) beats the per-query loop even
// though it also computes the masked upper triangle.
constexpr int64_t kGemmMinQueries = 16;
// Queries per unit of the GEMM path: small enough that the causal mask skips most of the upper
// triangle, large enough for an efficient GEMM.
constexpr int64_t kQueryBlock = 64;
// Query rows per causal block of the backward (six GEMMs per block and head).
constexpr int64_t kBackwardQueryBlock = 64;


#if defined(__AVX512F__)
// Lane j of the result is the sum of the 16 lanes of v[j]: a transpose-and-add tree that costs
// ~3 instructions per vector instead of a full horizontal sum (~8) for each.
inline __m512 sum_lanes_of_16(const __m512 (&v)[16]) {
  __m512 pairs[8];  // per 128-bit lane: partial sums of v[2i] at 0, 2 and of v[2i+1] at 1, 3
  for (int i = 0; i < 8; ++i)
    pairs[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  __m512 quads[4];  // per 128-bit lane: that lane's sums of v[4i .. 4i+3], in order
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(pairs[2 * i]), b = _mm512_castps_pd(pairs[2 * i + 1]);
    quads[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
  }
  // Fold the four 128-bit lanes: first pairs of lanes, then the two halves.
  constexpr int kEven = _MM_SHUFFLE(2, 0, 2, 0), kOdd = _MM_SHUFFLE(3, 1, 3, 1);
  const __m512 h0 = _mm512_add_ps(_mm512_shuffle_f32x4(quads[0], quads[1], kEven),
                                  _mm512_shuffle_f32x4(quads[0], quads[1], kOdd));
  const __m512 h1 = _mm512_add_ps(_mm512_shuffle_f32x4(quads[2], quads[3], kEven),
                                  _mm512_shuffle_f32x4(quads[2], quads[3], kOdd));
  return _mm512_add_ps(_mm512_shuffle_f32x4(h0, h1, kEven), _mm512_shuffle_f32x4(h0, h1, kOdd));
}

#endif

// Keys per split of one query row's attention. A row's keys are cut into splits of this many, each
// a unit of parallel work whose partial softmax is merged afterwards (as flash-decoding does), so
// one long sequence keeps every thread busy. Fixed (not chosen from the batch or the thread
// count), so a row's result never depends on what runs beside it.
constexpr int64_t kSplitKeys = 128;
// Most query heads of one kv head whose accumulators one pass over the values keeps in registers.
constexpr int kMaxPassHeads = 8;

// Partial attention over keys [0, len) of one kv head for `heads` (at most kMaxPassHeads) of the
// query heads that read it (GQA: K and V are read once for all of them): per head g, the largest score m[g], the sum of
// exp(score - m[g]) in l[g], and o[g * head_dim ...] = sum of exp(score - m[g]) * v. `q` holds the
// heads' queries one after another; `e` is scratch of heads * kSplitKeys floats.
template <class KE, class VE>
void attend_split(const float* q, int heads, const KE* k, const VE* v, int64_t kv_stride, int64_t len,
                  int head_dim, float scale, float* e, float* m, float* l, float* o) {
  for (int g = 0; g < heads; ++g) {
    const float* qg = q + int64_t(g) * head_dim;
    float* eg = e + int64_t(g) * kSplitKeys;
    int64_t s = 0;
#if defined(__AVX512F__)
    if (head_dim == 64 || head_dim == 128) {
      const int C = head_dim / 16;
      __m512 qv[8];
      for (int c = 0; c < C; ++c) qv[c] = _mm512_loadu_ps(qg + 16 * c);
      const __m512 vscale = _mm512_set1_ps(scale);
      for (; s + 16 <= len; s += 16) {
        __m512 part[16];
        for (int j = 0; j < 16; ++j) {
          const KE* kr = k + (s + j) * kv_stride;
          // Rows may sit kv_stride apart with other heads between them (training's layout), a
          // pattern the hardware prefetchers miss: ask for the next block's row now.
          if (g == 0)
            for (int c = 0; c < C; ++c) _mm_prefetch(reinterpret_cast<const char*>(kr + 16 * kv_stride + 16 * c), _MM_HINT_T0);
          __m512 acc = _mm512_mul_ps(qv[0], load16(kr));
          for (int c = 1; c < C; ++c) acc = _mm512_fmadd_ps(qv[c], load16(kr + 16 * c), acc);
          part[j] = acc;
        }
        _mm512_storeu_ps(eg + s, _mm512_mul_ps(sum_lanes_of_16(part), vscale));
      }
    }
#endif
    for (; s < len; ++s) eg[s] = dot_row(qg, k + s * kv_stride, head_dim) * scale;
    l[g] = exp_minus_max(eg, len, &m[g]);
  }
  // o = e . V: head_dim 64 takes up to 4 heads per pass over the values, 128 up to 2 (what the
  // registers hold).
#if defined(__AVX512F__)
  if (head_dim == 64 || head_dim == 128) {
    const int per_pass = head_dim == 64 ? 4 : 2;
    for (int g0 = 0; g0 < heads; g0 += per_pass) {
      const int n = std::min(per_pass, heads - g0);
      const float* eg = e + int64_t(g0) * kSplitKeys;
      float* og = o + int64_t(g0) * head_dim;
      if (head_dim == 64) {
        switch (n) {
          case 1: accumulate_values<1, 4>(eg, kSplitKeys, v, kv_stride, len, og, head_dim); break;
          case 2: accumulate_values<2, 4>(eg, kSplitKeys, v, kv_stride, len, og, head_dim); break;
          case 3: accumulate_values<3, 4>(eg, kSplitKeys, v, kv_stride, len, og, head_dim); break;
          default: accumulate_values<4, 4>(eg, kSplitKeys, v, kv_stride, len, og, head_dim); break;
        }
      } else if (n == 1) {
        accumulate_values<1, 8>(eg, kSplitKeys, v, kv_stride, len, og, head_dim);
      } else {
        accumulate_values<2, 8>(eg, kSplitKeys, v, kv_stride, len, og, head_dim);
      }
    }
    return;
  }
#endif
  for (int g = 0; g < heads; ++g) {
    float* og = o + int64_t(g) * head_dim;
    const float* eg = e + int64_t(g) * kSplitKeys;
    std::memset(og, 0, size_t(head_dim) * sizeof(float));
    for (int64_t s = 0; s < len; ++s) axpy_row(eg[s], v + s * kv_stride, og, head_dim);
  }
}

// The keys one query row sees: its K and V (kv head h at h * head_stride, position s at
// s * kv_stride elements from there) and how many.
template <class KE, class VE>
struct QueryKeys {
  const KE* k;
  const VE* v;
  int64_t len;
};

// One query row per (row, kv head, split of kSplitKeys keys), parallel over them (work_pool.h),
// then each query head's splits merged: the per-query path of a server's decode batch and of
// short prompt chunks. keys_of(r) gives row r's keys.
template <class KeysOf>
void attend_each_query(const float* q, int64_t rows, int n_heads, int n_kv_heads, int head_dim, int64_t kv_stride,
                       int64_t head_stride,
                       float scale, float* out, const KeysOf& keys_of) {
  const int group = n_heads / n_kv_heads;
  const int64_t q_stride = int64_t(n_heads) * head_dim, per_split = int64_t(group) * (head_dim + 2);
  // Units: row r's (kv head, split) pairs start at first_unit[r]; its partials at the same index.
  thread_local std::vector<int64_t> first_unit;
  thread_local std::vector<float> partial;  // per unit: m[group], l[group], o[group * head_dim]
  first_unit.resize(size_t(rows) + 1);
  int64_t units = 0, work = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t len = keys_of(r).len;
    MF_CHECK(len >= 1, "attention: query row ", r, " sees no keys");
    first_unit[size_t(r)] = units;
    units += int64_t(n_kv_heads) * ((len + kSplitKeys - 1) / kSplitKeys);
    work += len * n_heads * head_dim;
  }
  first_unit[size_t(rows)] = units;
  partial.resize(size_t(units * per_split));
  const int64_t* unit_start = first_unit.data();
  float* parts = partial.data();
  auto run_unit = [&](int64_t u) {
    const int64_t r = std::upper_bound(unit_start, unit_start + rows + 1, u) - unit_start - 1;
    const auto kv = keys_of(r);
    const int64_t splits = (kv.len + kSplitKeys - 1) / kSplitKeys, local = u - unit_start[r];
    const int h = int(local / splits);
    const int64_t s0 = (local % splits) * kSplitKeys, n = std::min(kSplitKeys, kv.len - s0);
    const int64_t kv_off = int64_t(h) * head_stride + s0 * kv_stride;
    float e[kMaxPassHeads * kSplitKeys];
    float* part = parts + u * per_split;
    // Wider groups (more than kMaxPassHeads query heads per kv head) take several passes.
    for (int g0 = 0; g0 < group; g0 += kMaxPassHeads)
      attend_split(q + r * q_stride + (int64_t(h) * group + g0) * head_dim, std::min(kMaxPassHeads, group - g0),
                   kv.k + kv_off, kv.v + kv_off, kv_stride, n, head_dim, scale, e, part + g0, part + group + g0,
                   part + 2 * group + int64_t(g0) * head_dim);
  };
  // A few keys per query: less work than waking the other threads costs.
  if (work < (1 << 14)) {
    for (int64_t u = 0; u < units; ++u) run_unit(u);
  } else {
    const int64_t per = chunk_size(units, 1);
    parallel_chunks((units + per - 1) / per, [&](int64_t c, int) {
      for (int64_t u = c * per; u < std::min(units, (c + 1) * per); ++u) run_unit(u);
    });
  }
  // Merge each query head's splits: out = sum_j exp(m_j - M) o_j / sum_j exp(m_j - M) l_j.
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t splits = (keys_of(r).len + kSplitKeys - 1) / kSplitKeys;
    for (int h = 0; h < n_kv_heads; ++h)
      for (int g = 0; g < group; ++g) {
        const float* first = parts + (unit_start[r] + int64_t(h) * splits) * per_split;
        float M = first[g];
        for (int64_t j = 1; j < splits; ++j) M = std::max(M, first[j * per_split + g]);
        float L = 0;
        float* dst = out + r * q_stride + (int64_t(h) * group + g) * head_dim;
        std::memset(dst, 0, size_t(head_dim) * sizeof(float));
        for (int64_t j = 0; j < splits; ++j) {
          const float* pj = first + j * per_split;
          const float w = splits == 1 ? 1.0f : std::exp(pj[g] - M);
          L += w * pj[group + g];
          simd::axpy(w, pj + 2 * group + int64_t(g) * head_dim, dst, head_dim);
        }
        const float inv = 1.0f / L;
        for (int d = 0; d < head_dim; ++d) dst[d] *= inv;
      }
  }
}

}  // namespace

namespace {

// Calls f(static_cast<const KE*>(nullptr), static_cast<const VE*>(nullptr)) with the element types
// that key_type and value_type name.
template <class F>
void with_cache_types(DType key_type, DType value_type, const F& f) {
  auto with_value = [&](auto key_tag) {
    switch (value_type) {
      case DType::F32: return f(key_tag, static_cast<const float*>(nullptr));
      case DType::F16: return f(key_tag, static_cast<const F16Element*>(nullptr));
      case DType::BF16: return f(key_tag, static_cast<const BF16Element*>(nullptr));
      default: fail("attention: a KV cache stores F32, F16 or BF16 values, not ", dtype_name(value_type));
    }
  };
  switch (key_type) {
    case DType::F32: return with_value(static_cast<const float*>(nullptr));
    case DType::F16: return with_value(static_cast<const F16Element*>(nullptr));
    case DType::BF16: return with_value(static_cast<const BF16Element*>(nullptr));
    default: fail("attention: a KV cache stores F32, F16 or BF16 keys, not ", dtype_name(key_type));
  }
}

// The checks and the two paths (per query below kGemmMinQueries, GEMMs per query block above)
// of attention over fp32 keys and values, kv head h at h * head_stride and position s at
// s * kv_stride elements from there.
void attention_forward_f32(const float* q, const float* k, const float* v, int64_t kv_stride,
                           int64_t head_stride, int64_t T, int64_t S, int n_heads, int n_kv_heads, int head_dim,
                           float scale, float* out, float* scratch) {
  if (T == 0) return;
  const int group = n_heads / n_kv_heads;
  const int64_t past = S - T;
  const int64_t q_stride = int64_t(n_heads) * head_dim;

  if (T < kGemmMinQueries) {
    attend_each_query(q, T, n_heads, n_kv_heads, head_dim, kv_stride, head_stride, scale, out,
                      [&](int64_t t) { return QueryKeys<float, float>{k, v, past + t + 1}; });
    return;
  }

  // Prefill: P = softmax(mask(scale * Q K^T)), then O = P V, as strided GEMMs reading q/k/v/out
  // in place, for one head and kQueryBlock queries at a time against only the keys those queries
  // see (causal: the upper triangle beyond the block is never computed). The (block, head) units
  // run in parallel, each GEMM on its own thread: the library's fork and join per small GEMM cost
  // more than its threads gain. The last blocks see the most keys, so they go first.
  const int64_t blocks = (T + kQueryBlock - 1) / kQueryBlock, units = blocks * n_heads;
  const int64_t block_rows = std::min(T, kQueryBlock);
  auto unit = [&](int64_t u, int thread) {
    const int64_t b = blocks - 1 - u / n_heads;
    const int h = int(u % n_heads);
    const int64_t t0 = b * kQueryBlock, rows = std::min(kQueryBlock, T - t0), keys = past + t0 + rows;
    const int64_t kv_off = int64_t(h / group) * head_stride;
    float* probs = scratch + int64_t(thread) * block_rows * S;  // [rows, keys]
    gemm_f32(false, true, rows, keys, head_dim, scale, q + t0 * q_stride + int64_t(h) * head_dim, q_stride,
             k + kv_off, kv_stride, 0.0f, probs, keys);
    for (int64_t i = 0; i < rows; ++i) {
      float* row = probs + i * keys;
      // Causal: query t0 + i sees keys up to past + t0 + i; the rest get probability 0 without an exp.
      softmax_row(row, past + t0 + i + 1);
      std::fill(row + past + t0 + i + 1, row + keys, 0.0f);
    }
    gemm_f32(false, false, rows, head_dim, keys, 1.0f, probs, keys, v + kv_off, kv_stride, 0.0f,
             out + t0 * q_stride + int64_t(h) * head_dim, q_stride);
  };
  parallel_chunks(units, unit);
}

void check_shape(const char* who, int64_t T, int64_t S, int n_heads, int n_kv_heads, int head_dim) {
  MF_CHECK(T >= 0 && S >= T, who, ": need 0 <= T <= S, got T=", T, " S=", S);
  MF_CHECK(n_heads > 0 && n_kv_heads > 0 && n_heads % n_kv_heads == 0, who, ": n_heads ", n_heads,
           " is not a multiple of n_kv_heads ", n_kv_heads);
  MF_CHECK(head_dim > 0, who, ": head_dim must be positive, got ", head_dim);
}

// A cache's keys and values must share their strides, and their heads must not overlap.
void check_cache_rows(const char* who, const CacheRows& k, const CacheRows& v, int n_kv_heads, int head_dim) {
  MF_CHECK(k.data != nullptr && v.data != nullptr, who, ": null keys or values");
  MF_CHECK(k.kv_stride == v.kv_stride && k.head_stride == v.head_stride, who,
           ": keys and values are laid out with different strides");
  MF_CHECK(k.kv_stride >= head_dim && k.head_stride >= head_dim &&
               (k.head_stride >= k.kv_stride || k.kv_stride >= int64_t(n_kv_heads) * k.head_stride),
           who, ": strides (position ", k.kv_stride, ", head ", k.head_stride, ") overlap ", n_kv_heads,
           " kv heads of ", head_dim);
  MF_CHECK(is_cache_type(k.type) && is_cache_type(v.type), who, ": a KV cache stores F32, F16 or BF16, not ",
           dtype_name(k.type), " keys and ", dtype_name(v.type), " values");
  MF_CHECK((k.type == DType::F32 && v.type == DType::F32) || head_dim <= kMaxWidenedHeadDim, who, ": head_dim ",
           head_dim, " is more than a 16-bit KV cache supports (", kMaxWidenedHeadDim, ")");
}

}  // namespace

bool is_cache_type(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

void attention_decode_batch(const float* q, const CacheRows* keys, const CacheRows* values, const int64_t* lengths,
                            int64_t batch, int n_heads, int n_kv_heads, int head_dim, float scale, float* out) {
  check_shape("attention_decode_batch", 1, 1, n_heads, n_kv_heads, head_dim);
  if (batch == 0) return;
  for (int64_t b = 0; b < batch; ++b) {
    MF_CHECK(lengths[b] >= 1, "attention_decode_batch: sequence ", b, " has no keys");
    check_cache_rows("attention_decode_batch", keys[b], values[b], n_kv_heads, head_dim);
    MF_CHECK(keys[b].type == keys[0].type && values[b].type == values[0].type &&
                 keys[b].kv_stride == keys[0].kv_stride && keys[b].head_stride == keys[0].head_stride,
             "attention_decode_batch: sequence ", b, "'s cache differs from sequence 0's in types or strides");
  }
  with_cache_types(keys[0].type, values[0].type, [&](auto key_tag, auto value_tag) {
    using KE = std::remove_cv_t<std::remove_pointer_t<decltype(key_tag)>>;
    using VE = std::remove_cv_t<std::remove_pointer_t<decltype(value_tag)>>;
    attend_each_query(q, batch, n_heads, n_kv_heads, head_dim, keys[0].kv_stride, keys[0].head_stride, scale, out,
                      [&](int64_t b) {
                        return QueryKeys<KE, VE>{static_cast<const KE*>(keys[b].data),
                                                 static_cast<const VE*>(values[b].data), lengths[b]};
                      });
  });
}

void attention_forward_cached(const float* q, CacheRows k, CacheRows v, int64_t T, int64_t S, int n_heads,
                              int n_kv_heads, int head_dim, float scale, float* out, float* scratch) {
  const char* who = "attention_forward_cached";
  check_shape(who, T, S, n_heads, n_kv_heads, head_dim);
  check_cache_rows(who, k, v, n_kv_heads, head_dim);
  if (k.type == DType::F32 && v.type == DType::F32)
    return attention_forward_f32(q, static_cast<const float*>(k.data), static_cast<const float*>(v.data),
                                 k.kv_stride, k.head_stride, T, S, n_heads, n_kv_heads, head_dim, scale, out, scratch);
  if (T == 0) return;
  if (T < kGemmMinQueries) {
    const int64_t past = S - T;
    with_cache_types(k.type, v.type, [&](auto key_tag, auto value_tag) {
      using KE = std::remove_cv_t<std::remove_pointer_t<decltype(key_tag)>>;
      using VE = std::remove_cv_t<std::remove_pointer_t<decltype(value_tag)>>;
      attend_each_query(q, T, n_heads, n_kv_heads, head_dim, k.kv_stride, k.head_stride, scale, out, [&](int64_t t) {
        return QueryKeys<KE, VE>{static_cast<const KE*>(k.data), static_cast<const VE*>(v.data), past + t + 1};
      });
    });
    return;
  }
  // A prompt chunk: its GEMMs want fp32 operands, so the S cached positions of every kv head are
  // widened once into a compact [n_kv_heads, S, head_dim] copy (a small cost beside the T x S x
  // head_dim multiply-adds per head) and the fp32 path runs on it.
  thread_local std::vector<float> wide;
  const int64_t per_head = S * head_dim, n = int64_t(n_kv_heads) * per_head;
  wide.resize(size_t(2 * n));
  // A head whose positions lie back to back (a KVCache's layout) widens in one call.
  const int64_t run = k.kv_stride == head_dim ? S : 1, runs = S / run;
  for (int h = 0; h < n_kv_heads; ++h)
    for (int64_t i = 0; i < runs; ++i) {
      const size_t at = size_t(h * k.head_stride + i * run * k.kv_stride);
      float* dst = wide.data() + h * per_head + i * run * head_dim;
      detail::decode_row(k.type, static_cast<const uint8_t*>(k.data) + at * dtype_bytes(k.type, 1), dst,
                         run * head_dim);
      detail::decode_row(v.type, static_cast<const uint8_t*>(v.data) + at * dtype_bytes(v.type, 1), dst + n,
                         run * head_dim);
    }
  attention_forward_f32(q, wide.data(), wide.data() + n, head_dim, per_head, T, S, n_heads, n_kv_heads, head_dim,
                        scale, out, scratch);
}

size_t attention_scratch_floats(int64_t T, int64_t S) {
  // The per-query path keeps its scores on the stack; the GEMM path one block of scores per thread.
  if (T < kGemmMinQueries) return 0;
  return size_t(parallel_threads()) * size_t(std::min(T, kQueryBlock)) * size_t(S);
}

void attention_forward(const float* q, const float* k, const float* v, int64_t kv_stride,
                       int64_t T, int64_t S, int n_heads, int n_kv_heads, int head_dim,
                       float scale, float* out, float* scratch) {
  check_shape("attention_forward", T, S, n_heads, n_kv_heads, head_dim);
  MF_CHECK(kv_stride >= int64_t(n_kv_heads) * head_dim, "attention_forward: kv_stride ", kv_stride,
           " is smaller than n_kv_heads*head_dim = ", int64_t(n_kv_heads) * head_dim);
  attention_forward_f32(q, k, v, kv_stride, head_dim, T, S, n_heads, n_kv_heads, head_dim, scale,
                        out, scratch);
}

size_t attention_backward_scratch_floats(int64_t T, int64_t S) {
  return size_t(parallel_threads()) * 2 * size_t(T) * size_t(S);
}

void attention_backward(const float* q, const float* k, const float* v, int64_t kv_stride, const float* dout,
                        int64_t T, int64_t S, int n_heads, int n_kv_heads, int head_dim, float scale, float* dq,
                        float* dk, float* dv, float* scratch, int64_t sequences) {
  MF_CHECK(T >= 0 && S >= T, "attention_backward: need 0 <= T <= S, got T=", T, " S=", S);
  MF_CHECK(n_heads > 0 && n_kv_heads > 0 && n_heads % n_kv_heads == 0, "attention_backward: n_heads ", n_heads,
           " is not a multiple of n_kv_heads ", n_kv_heads);
  MF_CHECK(head_dim > 0 && kv_stride >= int64_t(n_kv_heads) * head_dim, "attention_backward: kv_stride ", kv_stride,
           " is smaller than n_kv_heads*head_dim = ", int64_t(n_kv_heads) * head_dim);
  MF_CHECK(sequences >= 1, "attention_backward: need at least one sequence, got ", sequences);
  const int group = n_heads / n_kv_heads;
  const int64_t past = S - T;
  const int64_t q_stride = int64_t(n_heads) * head_dim;
  // A unit is one kv head of one sequence: the query heads of its group run one after another,
  // each adding into the unit's own dk/dv, so units write disjoint memory and every sum keeps its
  // order whatever the thread count. The GEMMs inside a unit run on its thread (a sequence's
  // [T, S] products are too small to split well).
  auto unit = [&](int64_t u, int thread) {
    const int64_t b = u / n_kv_heads;
    const int kv = int(u % n_kv_heads);
    const float* qb = q + b * T * q_stride;
    const float* doutb = dout + b * T * q_stride;
    float* dqb = dq + b * T * q_stride;
    const int64_t kv_off = b * S * kv_stride + int64_t(kv) * head_dim;
    for (int64_t s = 0; s < S; ++s) {
      std::fill(dk + kv_off + s * kv_stride, dk + kv_off + s * kv_stride + head_dim, 0.0f);
      std::fill(dv + kv_off + s * kv_stride, dv + kv_off + s * kv_stride + head_dim, 0.0f);
    }
    if (T == 0) return;
    float* probs = scratch + int64_t(thread) * 2 * T * S;  // [T, S]
    float* dprobs = probs + T * S;                         // [T, S]
    for (int h = kv * group; h < (kv + 1) * group; ++h) {
      const float* qh = qb + int64_t(h) * head_dim;
      const float* doh = doutb + int64_t(h) * head_dim;
      float* dqh = dqb + int64_t(h) * head_dim;
      // Causal blocks of query rows: rows [t0, t1) see keys [0, past + t1) only, so the products
      // skip the masked corner of [T, S] (about 3/8 of it at T = S = 256).
      for (int64_t t0 = 0; t0 < T; t0 += kBackwardQueryBlock) {
        const int64_t rows = std::min(kBackwardQueryBlock, T - t0), keys = past + t0 + rows;
        const float* qt = qh + t0 * q_stride;
        const float* dot_rows = doh + t0 * q_stride;
        float* pt = probs + t0 * S;
        float* dpt = dprobs + t0 * S;
        // P, as the forward computes it.
        gemm_f32(false, true, rows, keys, head_dim, scale, qt, q_stride, k + kv_off, kv_stride, 0.0f, pt, S);
        for (int64_t t = t0; t < t0 + rows; ++t) {
          float* row = probs + t * S;
          // Causal: only keys up to past + t are seen; the rest get probability 0 without an exp.
          softmax_row(row, past + t + 1);
          std::fill(row + past + t + 1, row + keys, 0.0f);
        }
        // dV += P^T dO;  dP = dO V^T
        gemm_f32(true, false, keys, head_dim, rows, 1.0f, pt, S, dot_rows, q_stride, 1.0f, dv + kv_off, kv_stride);
        gemm_f32(false, true, rows, keys, head_dim, 1.0f, dot_rows, q_stride, v + kv_off, kv_stride, 0.0f, dpt, S);
        // Softmax backward, with the score scale folded in: dScores = scale * P * (dP - sum(dP * P)).
        for (int64_t t = t0; t < t0 + rows; ++t) {
          const float* p = probs + t * S;
          float* d = dprobs + t * S;
          float dot = 0;
#pragma omp simd reduction(+ : dot)
          for (int64_t s = 0; s < keys; ++s) dot += p[s] * d[s];
#pragma omp simd
          for (int64_t s = 0; s < keys; ++s) d[s] = scale * p[s] * (d[s] - dot);
        }
        // dQ = dScores K;  dK += dScores^T Q
        gemm_f32(false, false, rows, head_dim, keys, 1.0f, dpt, S, k + kv_off, kv_stride, 0.0f, dqh + t0 * q_stride,
                 q_stride);
        gemm_f32(true, false, keys, head_dim, rows, 1.0f, dpt, S, qt, q_stride, 1.0f, dk + kv_off, kv_stride);
      }
    }
  };
  parallel_chunks(sequences * n_kv_heads, unit);
}

}  // namespace mf

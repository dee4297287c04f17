#include "kernels/cpu/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/work_pool.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/softmax.h"

namespace mf {

namespace {

// From this many queries on, one GEMM per head (QK^T, then PV) beats the per-query loop even
// though it also computes the masked upper triangle.
constexpr int64_t kGemmMinQueries = 16;
// Queries per unit of the GEMM path: small enough that the causal mask skips most of the upper
// triangle, large enough for an efficient GEMM.
constexpr int64_t kQueryBlock = 64;


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
void attend_split(const float* q, int heads, const float* k, const float* v, int64_t kv_stride, int64_t len,
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
          const float* kr = k + (s + j) * kv_stride;
          // Rows sit kv_stride apart (every kv head of a position together), a pattern the
          // hardware prefetchers miss: ask for the next block's row now.
          if (g == 0)
            for (int c = 0; c < C; ++c) _mm_prefetch(reinterpret_cast<const char*>(kr + 16 * kv_stride + 16 * c), _MM_HINT_T0);
          __m512 acc = _mm512_mul_ps(qv[0], _mm512_loadu_ps(kr));
          for (int c = 1; c < C; ++c) acc = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(kr + 16 * c), acc);
          part[j] = acc;
        }
        _mm512_storeu_ps(eg + s, _mm512_mul_ps(sum_lanes_of_16(part), vscale));
      }
    }
#endif
    for (; s < len; ++s) eg[s] = simd::dot(qg, k + s * kv_stride, head_dim) * scale;
    l[g] = exp_minus_max(eg, len, &m[g]);
  }
  // o = e . V in one pass over the values: each value row is loaded once and its multiply-adds go
  // to independent accumulators (no single FMA chain).
#if defined(__AVX512F__)
  if (head_dim == 64) {
    __m512 acc[kMaxPassHeads][4];
    for (int g = 0; g < heads; ++g)
      for (int c = 0; c < 4; ++c) acc[g][c] = _mm512_setzero_ps();
    for (int64_t s = 0; s < len; ++s) {
      const float* vr = v + s * kv_stride;
      for (int c = 0; c < 4; ++c) _mm_prefetch(reinterpret_cast<const char*>(vr + 8 * kv_stride + 16 * c), _MM_HINT_T0);
      const __m512 v0 = _mm512_loadu_ps(vr), v1 = _mm512_loadu_ps(vr + 16), v2 = _mm512_loadu_ps(vr + 32),
                   v3 = _mm512_loadu_ps(vr + 48);
      for (int g = 0; g < heads; ++g) {
        const __m512 p = _mm512_set1_ps(e[int64_t(g) * kSplitKeys + s]);
        acc[g][0] = _mm512_fmadd_ps(p, v0, acc[g][0]);
        acc[g][1] = _mm512_fmadd_ps(p, v1, acc[g][1]);
        acc[g][2] = _mm512_fmadd_ps(p, v2, acc[g][2]);
        acc[g][3] = _mm512_fmadd_ps(p, v3, acc[g][3]);
      }
    }
    for (int g = 0; g < heads; ++g)
      for (int c = 0; c < 4; ++c) _mm512_storeu_ps(o + int64_t(g) * 64 + 16 * c, acc[g][c]);
    return;
  }
#endif
  for (int g = 0; g < heads; ++g) {
    float* og = o + int64_t(g) * head_dim;
    const float* eg = e + int64_t(g) * kSplitKeys;
    std::memset(og, 0, size_t(head_dim) * sizeof(float));
    for (int64_t s = 0; s < len; ++s) simd::axpy(eg[s], v + s * kv_stride, og, head_dim);
  }
}

// The keys one query row sees: its K and V rows (read with kv_stride) and how many.
struct QueryKeys {
  const float* k;
  const float* v;
  int64_t len;
};

// One query row per (row, kv head, split of kSplitKeys keys), parallel over them (work_pool.h),
// then each query head's splits merged: the per-query path of a server's decode batch and of
// short prompt chunks. keys_of(r) gives row r's keys.
template <class KeysOf>
void attend_each_query(const float* q, int64_t rows, int n_heads, int n_kv_heads, int head_dim, int64_t kv_stride,
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
    const QueryKeys kv = keys_of(r);
    const int64_t splits = (kv.len + kSplitKeys - 1) / kSplitKeys, local = u - unit_start[r];
    const int h = int(local / splits);
    const int64_t s0 = (local % splits) * kSplitKeys, n = std::min(kSplitKeys, kv.len - s0);
    const int64_t kv_off = int64_t(h) * head_dim + s0 * kv_stride;
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

void attention_decode_batch(const float* q, const float* const* keys, const float* const* values,
                            const int64_t* lengths, int64_t batch, int64_t kv_stride, int n_heads, int n_kv_heads,
                            int head_dim, float scale, float* out, float* scratch) {
  MF_CHECK(n_heads > 0 && n_kv_heads > 0 && n_heads % n_kv_heads == 0,
           "attention_decode_batch: n_heads ", n_heads, " is not a multiple of n_kv_heads ", n_kv_heads);
  for (int64_t b = 0; b < batch; ++b) MF_CHECK(lengths[b] >= 1, "attention_decode_batch: sequence ", b, " has no keys");
  (void)scratch;  // the per-query path keeps its scores on the stack
  attend_each_query(q, batch, n_heads, n_kv_heads, head_dim, kv_stride, scale, out,
                    [&](int64_t b) { return QueryKeys{keys[b], values[b], lengths[b]}; });
}

size_t attention_scratch_floats(int64_t T, int64_t S) {
  // The per-query path keeps its scores on the stack; the GEMM path one block of scores per thread.
  if (T < kGemmMinQueries) return 0;
  return size_t(std::max(omp_get_max_threads(), parallel_threads())) * size_t(std::min(T, kQueryBlock)) * size_t(S);
}

void attention_forward(const float* q, const float* k, const float* v, int64_t kv_stride,
                       int64_t T, int64_t S, int n_heads, int n_kv_heads, int head_dim,
                       float scale, float* out, float* scratch) {
  MF_CHECK(T >= 0 && S >= T, "attention_forward: need 0 <= T <= S, got T=", T, " S=", S);
  MF_CHECK(n_heads > 0 && n_kv_heads > 0 && n_heads % n_kv_heads == 0,
           "attention_forward: n_heads ", n_heads, " is not a multiple of n_kv_heads ", n_kv_heads);
  MF_CHECK(head_dim > 0, "attention_forward: head_dim must be positive, got ", head_dim);
  MF_CHECK(kv_stride >= int64_t(n_kv_heads) * head_dim, "attention_forward: kv_stride ", kv_stride,
           " is smaller than n_kv_heads*head_dim = ", int64_t(n_kv_heads) * head_dim);
  if (T == 0) return;
  const int group = n_heads / n_kv_heads;
  const int64_t past = S - T;
  const int64_t q_stride = int64_t(n_heads) * head_dim;

  if (T < kGemmMinQueries) {
    attend_each_query(q, T, n_heads, n_kv_heads, head_dim, kv_stride, scale, out,
                      [&](int64_t t) { return QueryKeys{k, v, past + t + 1}; });
    return;
  }

  // Prefill: P = softmax(mask(scale * Q K^T)), then O = P V, as strided GEMMs reading q/k/v/out
  // in place, for one head and kQueryBlock queries at a time against only the keys those queries
  // see (causal: the upper triangle beyond the block is never computed). The (block, head) units
  // run in parallel, each GEMM on its own thread: the library's fork and join per small GEMM cost
  // more than its threads gain. The last blocks see the most keys, so they go first.
  const int64_t blocks = (T + kQueryBlock - 1) / kQueryBlock, units = blocks * n_heads;
  const int64_t block_rows = std::min(T, kQueryBlock);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t u = 0; u < units; ++u) {
    const int64_t b = blocks - 1 - u / n_heads;
    const int h = int(u % n_heads);
    const int64_t t0 = b * kQueryBlock, rows = std::min(kQueryBlock, T - t0), keys = past + t0 + rows;
    const int64_t kv_off = int64_t(h / group) * head_dim;
    float* probs = scratch + int64_t(omp_get_thread_num()) * block_rows * S;  // [rows, keys]
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
  }
}

size_t attention_backward_scratch_floats(int64_t T, int64_t S) { return 2 * size_t(T) * size_t(S); }

void attention_backward(const float* q, const float* k, const float* v, int64_t kv_stride, const float* dout,
                        int64_t T, int64_t S, int n_heads, int n_kv_heads, int head_dim, float scale, float* dq,
                        float* dk, float* dv, float* scratch) {
  MF_CHECK(T >= 0 && S >= T, "attention_backward: need 0 <= T <= S, got T=", T, " S=", S);
  MF_CHECK(n_heads > 0 && n_kv_heads > 0 && n_heads % n_kv_heads == 0, "attention_backward: n_heads ", n_heads,
           " is not a multiple of n_kv_heads ", n_kv_heads);
  MF_CHECK(head_dim > 0 && kv_stride >= int64_t(n_kv_heads) * head_dim, "attention_backward: kv_stride ", kv_stride,
           " is smaller than n_kv_heads*head_dim = ", int64_t(n_kv_heads) * head_dim);
  const int64_t kv_width = int64_t(n_kv_heads) * head_dim;
  for (int64_t s = 0; s < S; ++s) {
    std::fill(dk + s * kv_stride, dk + s * kv_stride + kv_width, 0.0f);
    std::fill(dv + s * kv_stride, dv + s * kv_stride + kv_width, 0.0f);
  }
  if (T == 0) return;
  const int group = n_heads / n_kv_heads;
  const int64_t past = S - T;
  const int64_t q_stride = int64_t(n_heads) * head_dim;
  float* probs = scratch;           // [T, S]
  float* dprobs = scratch + T * S;  // [T, S]
  for (int h = 0; h < n_heads; ++h) {
    const int64_t kv_off = int64_t(h / group) * head_dim;
    const float* qh = q + int64_t(h) * head_dim;
    const float* doh = dout + int64_t(h) * head_dim;
    // P, as the forward computes it.
    gemm_f32(false, true, T, S, head_dim, scale, qh, q_stride, k + kv_off, kv_stride, 0.0f, probs, S);
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; ++t) {
      float* row = probs + t * S;
      // Causal: only keys up to past + t are seen; the rest get probability 0 without an exp.
      softmax_row(row, past + t + 1);
      std::fill(row + past + t + 1, row + S, 0.0f);
    }
    // dV += P^T dO;  dP = dO V^T
    gemm_f32(true, false, S, head_dim, T, 1.0f, probs, S, doh, q_stride, 1.0f, dv + kv_off, kv_stride);
    gemm_f32(false, true, T, S, head_dim, 1.0f, doh, q_stride, v + kv_off, kv_stride, 0.0f, dprobs, S);
    // Softmax backward, with the score scale folded in: dScores = scale * P * (dP - sum(dP * P)).
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; ++t) {
      const float* p = probs + t * S;
      float* d = dprobs + t * S;
      float dot = 0;
#pragma omp simd reduction(+ : dot)
      for (int64_t s = 0; s < S; ++s) dot += p[s] * d[s];
#pragma omp simd
      for (int64_t s = 0; s < S; ++s) d[s] = scale * p[s] * (d[s] - dot);
    }
    // dQ = dScores K;  dK += dScores^T Q
    gemm_f32(false, false, T, head_dim, S, 1.0f, dprobs, S, k + kv_off, kv_stride, 0.0f, dq + int64_t(h) * head_dim,
             q_stride);
    gemm_f32(true, false, S, head_dim, T, 1.0f, dprobs, S, qh, q_stride, 1.0f, dk + kv_off, kv_stride);
  }
}

}  // namespace mf

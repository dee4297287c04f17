#include "kernels/cpu/attention.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

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

// Per-thread rows of the loop path are padded to a cache line so threads never share one.
int64_t padded(int64_t n) { return (n + 15) / 16 * 16; }

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

// attend_one for a head width of HD = 16 * C floats (64 and 128, the common ones): the query
// and the output accumulator live in registers, scores come 16 keys at a time.
template <int C>
void attend_one_fixed(const float* q, const float* k, const float* v, int64_t kv_stride, int64_t len, float scale,
                      float* scores, float* out) {
  __m512 qv[C];
  for (int c = 0; c < C; ++c) qv[c] = _mm512_loadu_ps(q + 16 * c);
  const __m512 vscale = _mm512_set1_ps(scale);
  int64_t s = 0;
  for (; s + 16 <= len; s += 16) {
    __m512 part[16];
    for (int j = 0; j < 16; ++j) {
      const float* kr = k + (s + j) * kv_stride;
      __m512 acc = _mm512_mul_ps(qv[0], _mm512_loadu_ps(kr));
      for (int c = 1; c < C; ++c) acc = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(kr + 16 * c), acc);
      part[j] = acc;
    }
    _mm512_storeu_ps(scores + s, _mm512_mul_ps(sum_lanes_of_16(part), vscale));
  }
  for (; s < len; ++s) scores[s] = simd::dot(q, k + s * kv_stride, 16 * C) * scale;
  softmax_row(scores, len);
  __m512 acc[C];
  for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
  for (s = 0; s < len; ++s) {
    const __m512 p = _mm512_set1_ps(scores[s]);
    const float* vr = v + s * kv_stride;
    for (int c = 0; c < C; ++c) acc[c] = _mm512_fmadd_ps(p, _mm512_loadu_ps(vr + 16 * c), acc[c]);
  }
  for (int c = 0; c < C; ++c) _mm512_storeu_ps(out + 16 * c, acc[c]);
}
#endif

// One query row against keys [0, len): scores, softmax, weighted sum of values.
void attend_one(const float* q, const float* k, const float* v, int64_t kv_stride, int64_t len,
                int head_dim, float scale, float* scores, float* out) {
#if defined(__AVX512F__)
  if (head_dim == 64) return attend_one_fixed<4>(q, k, v, kv_stride, len, scale, scores, out);
  if (head_dim == 128) return attend_one_fixed<8>(q, k, v, kv_stride, len, scale, scores, out);
#endif
  for (int64_t s = 0; s < len; ++s) scores[s] = simd::dot(q, k + s * kv_stride, head_dim) * scale;
  softmax_row(scores, len);
  std::memset(out, 0, size_t(head_dim) * sizeof(float));
  for (int64_t s = 0; s < len; ++s) simd::axpy(scores[s], v + s * kv_stride, out, head_dim);
}

// The keys one query row sees: its K and V rows (read with kv_stride) and how many.
struct QueryKeys {
  const float* k;
  const float* v;
  int64_t len;
};

// One query row per (row, head), parallel over them (work_pool.h), each thread with its own scores
// row of `scores_row` floats: the per-query path of a server's decode batch and of short prompt
// chunks. keys_of(r) gives row r's keys; `longest` bounds their count.
template <class KeysOf>
void attend_each_query(const float* q, int64_t rows, int n_heads, int n_kv_heads, int head_dim, int64_t kv_stride,
                       float scale, int64_t scores_row, int64_t longest, float* scratch, float* out,
                       const KeysOf& keys_of) {
  const int group = n_heads / n_kv_heads;
  const int64_t q_stride = int64_t(n_heads) * head_dim, items = rows * n_heads;
  auto attend = [&](int64_t item, float* scores) {
    const int64_t r = item / n_heads;
    const int h = int(item % n_heads);
    const int64_t kv_off = int64_t(h / group) * head_dim;
    const QueryKeys kv = keys_of(r);
    attend_one(q + r * q_stride + int64_t(h) * head_dim, kv.k + kv_off, kv.v + kv_off, kv_stride, kv.len, head_dim,
               scale, scores, out + r * q_stride + int64_t(h) * head_dim);
  };
  // A few keys per query: less work than waking the other threads costs.
  const int64_t work_per_item = std::max<int64_t>(1, longest * head_dim);
  if (items * work_per_item < (1 << 14)) {
    for (int64_t item = 0; item < items; ++item) attend(item, scratch);
    return;
  }
  const int64_t per = chunk_size(items, (8192 + work_per_item - 1) / work_per_item);
  parallel_chunks((items + per - 1) / per, [&](int64_t c, int thread) {
    float* scores = scratch + int64_t(thread) * scores_row;
    for (int64_t item = c * per; item < std::min(items, (c + 1) * per); ++item) attend(item, scores);
  });
}

}  // namespace

void attention_decode_batch(const float* q, const float* const* keys, const float* const* values,
                            const int64_t* lengths, int64_t batch, int64_t kv_stride, int n_heads, int n_kv_heads,
                            int head_dim, float scale, float* out, float* scratch) {
  MF_CHECK(n_heads > 0 && n_kv_heads > 0 && n_heads % n_kv_heads == 0,
           "attention_decode_batch: n_heads ", n_heads, " is not a multiple of n_kv_heads ", n_kv_heads);
  int64_t longest = 0;
  for (int64_t b = 0; b < batch; ++b) {
    MF_CHECK(lengths[b] >= 1, "attention_decode_batch: sequence ", b, " has no keys");
    longest = std::max(longest, lengths[b]);
  }
  attend_each_query(q, batch, n_heads, n_kv_heads, head_dim, kv_stride, scale, padded(longest), longest, scratch, out,
                    [&](int64_t b) { return QueryKeys{keys[b], values[b], lengths[b]}; });
}

size_t attention_scratch_floats(int64_t T, int64_t S) {
  size_t per_thread = size_t(parallel_threads()) * size_t(padded(S));
  if (T >= kGemmMinQueries) return std::max(per_thread, size_t(T) * size_t(S));
  return per_thread;
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
    attend_each_query(q, T, n_heads, n_kv_heads, head_dim, kv_stride, scale, padded(S), S, scratch, out,
                      [&](int64_t t) { return QueryKeys{k, v, past + t + 1}; });
    return;
  }

  // Prefill: per head, P = softmax(mask(scale * Q K^T)) then O = P V, both as strided GEMMs
  // reading q/k/v/out in place; the GEMM library parallelises each one.
  float* probs = scratch;  // [T, S]
  for (int h = 0; h < n_heads; ++h) {
    const int64_t kv_off = int64_t(h / group) * head_dim;
    gemm_f32(false, true, T, S, head_dim, scale, q + int64_t(h) * head_dim, q_stride, k + kv_off, kv_stride,
             0.0f, probs, S);
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; ++t) {
      float* row = probs + t * S;
      // Causal: only keys up to past + t are seen; the rest get probability 0 without an exp.
      softmax_row(row, past + t + 1);
      std::fill(row + past + t + 1, row + S, 0.0f);
    }
    gemm_f32(false, false, T, head_dim, S, 1.0f, probs, S, v + kv_off, kv_stride, 0.0f,
             out + int64_t(h) * head_dim, q_stride);
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

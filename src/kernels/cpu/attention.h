// Causal grouped-query attention (fp32) over a KV cache read in place.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace mf {

// Floats of scratch attention_forward needs for these sizes with the current thread count
// (parallel_threads()): none below 16 queries, else one block of query rows' scores per thread. Allocate it once per (T, S) bound and reuse it.
size_t attention_scratch_floats(int64_t T, int64_t S);

// Causal GQA attention of T new queries against a cache of S keys (S >= T). Query t sits at
// absolute position past + t, past = S - T, and attends keys 0..past+t. Query head h reads
// kv head h / (n_heads / n_kv_heads).
// q: [T, n_heads, head_dim]; k, v: [S, n_kv_heads, head_dim] with kv_stride floats between
// consecutive positions (>= n_kv_heads * head_dim); out: [T, n_heads, head_dim].
// scale is normally 1/sqrt(head_dim). scratch: attention_scratch_floats(T, S) floats.
void attention_forward(const float* q, const float* k, const float* v, int64_t kv_stride,
                       int64_t T, int64_t S, int n_heads, int n_kv_heads, int head_dim,
                       float scale, float* out, float* scratch);

// A sequence's keys or values in a KV cache: kv head h starts head_stride elements after head
// h - 1, and position s kv_stride elements after position s - 1 (a KVCache keeps each head's
// positions together: kv_stride = head_dim; training's [S, n_kv_heads, head_dim] rows have
// head_stride = head_dim). Elements are F32, or F16 / BF16 (a 16-bit cache: half the memory and
// the memory traffic of attention; widened to fp32 as they are read, all arithmetic in fp32).
struct CacheRows {
  const void* data = nullptr;
  DType type = DType::F32;
  int64_t kv_stride = 0;
  int64_t head_stride = 0;
};
// The element types a KV cache may store: F32, F16, BF16.
bool is_cache_type(DType t);

// attention_forward over a KV cache (same causal rule; keys and values share one layout). Below
// 16 queries the per-query path reads the cache in place; a prompt chunk over a 16-bit cache
// widens the S cached positions into a thread-local fp32 copy first. A 16-bit cache gives exactly
// what the F32 path gives on the same keys and values rounded to that type.
void attention_forward_cached(const float* q, CacheRows k, CacheRows v, int64_t T, int64_t S, int n_heads,
                              int n_kv_heads, int head_dim, float scale, float* out, float* scratch);

// One decode query for each of B sequences, each against its own cache (continuous batching:
// every active slot of a server's KV cache), in one parallel loop over (sequence, kv head, split of
// keys) rather than one per sequence. Sequence b: query q + b * n_heads * head_dim, keys keys[b]
// and values values[b] (every sequence's of the same types and strides), lengths[b] keys
// including its new one, output out + b * n_heads * head_dim. Each sequence gets exactly what
// attention_forward_cached computes for it alone.
void attention_decode_batch(const float* q, const CacheRows* keys, const CacheRows* values, const int64_t* lengths,
                            int64_t batch, int n_heads, int n_kv_heads, int head_dim, float scale, float* out);

// Floats of scratch attention_backward needs at the current thread count: the probabilities and
// their gradient, [T, S] each, per thread.
size_t attention_backward_scratch_floats(int64_t T, int64_t S);

// Backward of attention_forward (same layouts and causal rule), recomputing the probabilities
// P = softmax(mask(scale * Q K^T)) per head instead of storing them. From dout [T, n_heads,
// head_dim] it writes dq [T, n_heads, head_dim] and dk, dv (laid out like k, v: kv_stride floats
// per position; only the first n_kv_heads * head_dim of each row are written, and every query
// head of a group adds into its shared kv head). `sequences` independent sequences may follow one
// another (sequence b's queries at row b * T, its keys at row b * S); the (sequence, kv head)
// pairs run in parallel.
void attention_backward(const float* q, const float* k, const float* v, int64_t kv_stride, const float* dout,
                        int64_t T, int64_t S, int n_heads, int n_kv_heads, int head_dim, float scale, float* dq,
                        float* dk, float* dv, float* scratch, int64_t sequences = 1);

}  // namespace mf

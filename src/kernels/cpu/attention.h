// Causal grouped-query attention (fp32) over a KV cache read in place.
#pragma once
#include <cstddef>
#include <cstdint>

namespace mf {

// Floats of scratch attention_forward needs for these sizes with the current OpenMP thread
// count (omp_get_max_threads()): none below 16 queries, else one block of query rows' scores per
// thread. Allocate it once per (T, S) bound and reuse it.
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

// One decode query for each of B sequences, each against its own cache (continuous batching:
// every active slot of a server's KV cache), in one parallel region over (sequence, head) rather
// than one region per sequence. Sequence b: query q + b * n_heads * head_dim, keys keys[b] and
// values values[b] (kv_stride floats per position), lengths[b] keys including its new one, output
// out + b * n_heads * head_dim. Each (sequence, head) computes exactly what attention_forward
// computes for that sequence alone. scratch: attention_scratch_floats(1, max length) floats.
void attention_decode_batch(const float* q, const float* const* keys, const float* const* values,
                            const int64_t* lengths, int64_t batch, int64_t kv_stride, int n_heads, int n_kv_heads,
                            int head_dim, float scale, float* out, float* scratch);

// Floats of scratch attention_backward needs: the probabilities and their gradient, [T, S] each.
size_t attention_backward_scratch_floats(int64_t T, int64_t S);

// Backward of attention_forward (same layouts and causal rule), recomputing the probabilities
// P = softmax(mask(scale * Q K^T)) per head instead of storing them. From dout [T, n_heads,
// head_dim] it writes dq [T, n_heads, head_dim] and dk, dv (laid out like k, v: kv_stride floats
// per position; only the first n_kv_heads * head_dim of each row are written, and every query
// head of a group adds into its shared kv head).
void attention_backward(const float* q, const float* k, const float* v, int64_t kv_stride, const float* dout,
                        int64_t T, int64_t S, int n_heads, int n_kv_heads, int head_dim, float scale, float* dq,
                        float* dk, float* dv, float* scratch);

}  // namespace mf

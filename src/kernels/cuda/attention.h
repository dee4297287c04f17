// CUDA causal grouped-query attention (twin of kernels/cpu/attention.h) in bf16 with fp32
// softmax and accumulation: a FlashAttention-2 style forward and backward for training and
// prefill, a split-K decode step over a KV cache, and prefill appended to a cache.
//
// Shared conventions:
// - Every pointer is device memory. bf16 tensors are contiguous in the layouts given below and
//   must be 16-byte aligned (tiles are moved 8 bf16 at a time); lse and scratch are fp32.
// - Query head h reads kv head h / (n_heads / n_kv_heads); n_heads must be a multiple of
//   n_kv_heads. head_dim is 32, 64, 96 or 128 (one compiled kernel per size; anything else is
//   an mf::Error).
// - scale multiplies q.k before the softmax (normally 1/sqrt(head_dim)).
// - Each function queues its kernels on `stream` and returns: it never synchronises and never
//   allocates (scratch comes from the caller, sized by the matching *_scratch_bytes query).
//   Shape errors are thrown before anything is queued; a fault inside a kernel surfaces at the
//   caller's next synchronisation.
// - Nothing of size T x T is ever stored: forward and backward stream key tiles through shared
//   memory with an online softmax, so memory is O(T) beyond the tensors themselves.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/device.h"

namespace mf::cuda {

// The shape of one attention call, instead of a run of positional integers.
struct AttentionShape {
  int batch = 1;          // sequences
  int T = 0;              // queries per sequence (1 for decode)
  int n_heads = 0, n_kv_heads = 0, head_dim = 0;
  float scale = 0.0f;     // multiplies q.k before the softmax (normally 1/sqrt(head_dim))
};

// Causal attention over whole sequences (training, and prefill without a cache).
// q, out: [batch, T, n_heads, head_dim]; k, v: [batch, T, n_kv_heads, head_dim]. Query t of a
// sequence sees keys 0..t of the same sequence.
// lse: [batch, n_heads, T] fp32, log(sum_j exp(scale * q_t . k_j)) over the keys query t sees:
// the backward recomputes the probabilities from it instead of storing them. May be null when
// no backward will follow.
void attention_forward(const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse, const AttentionShape& s,
                       cudaStream_t stream);

// Bytes of scratch attention_backward needs: Delta = rowsum(dout * out), one float per
// (sequence, head, query).
size_t attention_backward_scratch_bytes(const AttentionShape& s);

// Backward of attention_forward. q, k, v, out, lse are what the forward saw and wrote; dout is
// laid out like out. Writes (does not accumulate into) dq like q and dk, dv like k, v; every
// query head of a group contributes to its kv head's dk/dv. Deterministic: each gradient element
// is summed by one thread in a fixed order (no atomics), so reruns are bit-identical.
// scratch: attention_backward_scratch_bytes(s) bytes.
void attention_backward(const bf16* q, const bf16* k, const bf16* v, const bf16* out, const bf16* dout,
                        const float* lse, bf16* dq, bf16* dk, bf16* dv, float* scratch, const AttentionShape& s,
                        cudaStream_t stream);

// Bytes of scratch attention_decode needs: the key axis is split into chunks of a fixed size
// and each chunk's partial result (head_dim + 2 floats per (sequence, head, chunk)) is merged
// by a second kernel. 0 when the cache fits one chunk (the single kernel writes out directly).
// s.T is not read (decode has one query per sequence).
size_t attention_decode_scratch_bytes(const AttentionShape& s, int capacity);

// One generation step: each sequence's single new query against its KV cache.
// q, out: [batch, n_heads, head_dim]; k_cache, v_cache: [batch, capacity, n_kv_heads, head_dim]
// with the new token's key and value already written. lengths: device int32 [batch], the valid
// cached positions of each sequence including the new one (1..capacity; the query sees all of
// them). Lengths live on the device so a decode loop (or a CUDA graph) never waits on the host;
// the grid is sized by capacity and chunks past a sequence's length return at once.
// scratch: attention_decode_scratch_bytes(s, capacity) bytes (may be null when that is 0).
// s.T is not read.
void attention_decode(const bf16* q, const bf16* k_cache, const bf16* v_cache, const int32_t* lengths, bf16* out,
                      float* scratch, const AttentionShape& s, int capacity, cudaStream_t stream);

// Prefill of T new tokens per sequence appended to a KV cache whose keys and values for the new
// tokens are already written. q, out: [batch, T, n_heads, head_dim]; k_cache, v_cache: [batch,
// capacity, n_kv_heads, head_dim]; past: device int32 [batch], tokens cached before this call.
// Query t of sequence b sits at position past[b] + t and sees cache positions 0..past[b] + t;
// past[b] + T must not exceed capacity (positions beyond capacity are never read: such queries
// would see only the first capacity keys).
void attention_prefill_cached(const bf16* q, const bf16* k_cache, const bf16* v_cache, const int32_t* past,
                              bf16* out, const AttentionShape& s, int capacity, cudaStream_t stream);

}  // namespace mf::cuda

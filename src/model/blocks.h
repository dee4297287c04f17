// The pieces of one decoder layer, as free functions over a Workspace (internal to model/).
#pragma once
#include <span>
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "kernels/cpu/rope.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "model/layer_weights.h"
#include "model/workspace.h"

namespace mf {

// Token embedding rows (dequantized to fp32) into ws.x; ids are checked against the vocab.
void embed_tokens(const Tensor& embed, const int32_t* ids, int64_t n, float* x);
// Backward of embed_tokens: dtable[ids[i]] += dx[i] for the n rows of width H (dtable: fp32
// [vocab, H], accumulated in row order so repeated ids sum deterministically).
void embed_tokens_backward(const int32_t* ids, int64_t n, const float* dx, int64_t H, int64_t vocab, float* dtable);

// x += o_proj(attention(rmsnorm(x))) for sequences of lengths[b] tokens each (rows one after
// another), appending the new keys/values of layer `layer` to the cache at each sequence's
// current length. Row b of the batch is cache sequence slots[b]. The leading one-token rows (a
// server step's decoding sequences) attend in one parallel loop.
void attention_block(const ModelConfig& c, const LayerWeights& L, int layer, std::span<const int> lengths,
                     const RopeTable& rope, KVCache& cache, std::span<const int> slots, Workspace& ws);

// x += ffn(rmsnorm(x)): SwiGLU MLP, or the routed experts (+ shared expert) of a MoE layer.
// When router_logits is set, the layer's [N, E] router logits are appended to it; when
// ffn_inputs is set, a copy of rmsnorm(x) [N, H].
void ffn_block(const ModelConfig& c, const LayerWeights& L, Workspace& ws, std::vector<Tensor>* router_logits,
               std::vector<Tensor>* ffn_inputs = nullptr);

}  // namespace mf

// Activation buffers of one forward shape, allocated once and reused by every layer.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/cpu/attention.h"
#include "model/config.h"
#include "model/moe_ffn.h"

namespace mf {

struct Workspace {
  Workspace() = default;
  Workspace(const ModelConfig& c, int64_t tokens, int64_t max_tokens_per_seq, int64_t cache_capacity);

  int64_t tokens = 0, per_seq = 0, capacity = 0;
  std::vector<float> x, h, out;            // residual stream, normed input, block output [N, H]
  std::vector<float> q, k, v, attn;        // [N, nH*D], [N, kv], [N, kv], [N, nH*D]
  std::vector<float> ffn_a, ffn_b;         // dense FFN: [N, I]
  MoeActs moe;                             // MoE FFN buffers (the last MoE layer's routing), grown on use
  std::vector<float> attn_scratch;
  std::vector<int32_t> positions;          // [N]
  // A step's decoding rows: each one's cached keys, values and key count (attention_block).
  std::vector<CacheRows> decode_keys, decode_values;
  std::vector<int64_t> decode_lengths;
};

}  // namespace mf

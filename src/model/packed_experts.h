// Newer Hugging Face checkpoints (transformers 5) store each MoE layer's experts as two
// stacked tensors instead of one set of matrices per expert:
//   model.layers.N.mlp.experts.gate_up_proj  [E, 2*I, H]   (gate rows first, then up)
//   model.layers.N.mlp.experts.down_proj     [E, H, I]
//   model.layers.N.mlp.gate.weight           [E, H]         (the router)
// moeforge binds weights by the classic per-expert names, so a packed checkpoint is turned
// into zero-copy views under those names at load time (Mixtral: block_sparse_moe.experts.e.w1/
// w3/w2 and block_sparse_moe.gate; Qwen2-MoE: mlp.experts.e.gate_proj/up_proj/down_proj).
#pragma once
#include "model/weights.h"

namespace mf {

// Rewrites every packed layer in place; returns how many layers were packed. A layer that has
// both layouts, or packed tensors of the wrong shape, is a clear error naming the tensor.
int unpack_packed_experts(ModelWeights& w);

}  // namespace mf

// Hugging Face names of an MoE layer's tensors, in one place: Mixtral's layout
// (model.layers.N.block_sparse_moe.{gate, experts.E.w1/w3/w2}) or Qwen2-MoE's
// (model.layers.N.mlp.{gate, experts.E.gate_proj/up_proj/down_proj, shared_expert*}); plus
// moeforge's own additions, named after their closest published counterpart.
#pragma once
#include <array>
#include <string>

#include "model/config.h"

namespace mf {

struct MoeNames {
  std::string prefix;                  // "model.layers.N.block_sparse_moe." or "model.layers.N.mlp."
  std::array<const char*, 3> leaves;   // gate, up, down of one expert ("w1", "w3", "w2" for Mixtral)

  std::string router() const { return prefix + "gate.weight"; }
  // noisy_topk's noise projection W_noise [E, H] (makeMoE's noise_linear).
  std::string noise() const { return prefix + "noise.weight"; }
  // The selection bias [E] of auxiliary-loss-free balancing (DeepSeek-V3's name).
  std::string selection_bias() const { return prefix + "gate.e_score_correction_bias"; }
  std::string expert(int e, int part) const {
    return prefix + "experts." + std::to_string(e) + "." + leaves[size_t(part)] + ".weight";
  }
  std::string shared(int part) const {
    static const char* const kShared[3] = {"gate_proj", "up_proj", "down_proj"};
    return prefix + "shared_expert." + kShared[part] + ".weight";
  }
  std::string shared_gate() const { return prefix + "shared_expert_gate.weight"; }
};

inline MoeNames moe_names(const ModelConfig& c, int layer) {
  const bool qwen = c.model_type == "qwen2_moe";
  MoeNames n;
  n.prefix = "model.layers." + std::to_string(layer) + (qwen ? ".mlp." : ".block_sparse_moe.");
  n.leaves = qwen ? std::array<const char*, 3>{"gate_proj", "up_proj", "down_proj"}
                  : std::array<const char*, 3>{"w1", "w3", "w2"};
  return n;
}

}  // namespace mf

// Every Hugging Face tensor name moeforge reads or writes, in one place: the model-level tensors,
// a decoder layer's attention, norms and dense MLP, an MoE layer's router, experts and shared
// expert in Mixtral's layout (model.layers.N.block_sparse_moe.{gate, experts.E.w1/w3/w2}) or
// Qwen2-MoE's (model.layers.N.mlp.{gate, experts.E.gate_proj/up_proj/down_proj, shared_expert*}),
// moeforge's own additions (named after their closest published counterpart), and the rule
// for which tensors are buffers rather than parameters. Load, save, init, fuse, freeze, GGUF
// export and both devices' training models build names here. (GGUF's own names map to these
// in model/gguf_names.)
#pragma once
#include <array>
#include <functional>
#include <string>

#include "model/config.h"

namespace mf {

inline constexpr const char* kEmbedTokensName = "model.embed_tokens.weight";
inline constexpr const char* kFinalNormName = "model.norm.weight";
inline constexpr const char* kLmHeadName = "lm_head.weight";

// "model.layers.N."
std::string layer_prefix(int layer);

// The parts of a SwiGLU MLP in HF order of the names: gate, up, down.
enum MlpPart : int { kMlpGate = 0, kMlpUp = 1, kMlpDown = 2 };

// Names of one decoder layer's attention, norms and dense MLP.
struct LayerNames {
  std::string prefix;  // "model.layers.N."

  std::string attn_norm() const { return prefix + "input_layernorm.weight"; }
  std::string ffn_norm() const { return prefix + "post_attention_layernorm.weight"; }
  // "q", "k", "v" or "o": the projection's weight, or its bias.
  std::string attn(char which) const { return prefix + "self_attn." + which + "_proj.weight"; }
  std::string attn_bias(char which) const { return prefix + "self_attn." + which + "_proj.bias"; }
  std::string mlp(int part) const;  // dense layers: mlp.gate_proj / up_proj / down_proj
};
LayerNames layer_names(int layer);

// Names of one MoE layer's tensors (its layout follows the config's model_type).
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
  std::string shared(int part) const;
  std::string shared_gate() const { return prefix + "shared_expert_gate.weight"; }
};
MoeNames moe_names(const ModelConfig& c, int layer);
// Mixtral's layout whatever the config (what fuse and upcycle write, and the GGUF layout).
MoeNames mixtral_moe_names(int layer);

// Name groups (freeze lists, reports): the token embedding and LM head; any attention tensor;
// a router (its weight and selection bias); a routed expert's matrix; any RMSNorm weight.
bool is_embedding_name(const std::string& name);
bool is_attention_name(const std::string& name);
bool is_router_name(const std::string& name);
bool is_expert_name(const std::string& name);
bool is_norm_name(const std::string& name);

// Buffers change without gradients (the selection biases): never parameters, never frozen.
bool is_buffer(const std::string& name);
// A parameter that trains: not a buffer, and not frozen.
bool is_trainable(const std::string& name, const std::function<bool(const std::string&)>& frozen);

}  // namespace mf

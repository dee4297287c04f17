#include "model/tensor_names.h"

namespace mf {
namespace {

constexpr const char* kMlpLeaves[3] = {"gate_proj", "up_proj", "down_proj"};
constexpr const char* kMixtralLeaves[3] = {"w1", "w3", "w2"};
constexpr const char* kBufferSuffix = ".e_score_correction_bias";

MoeNames moe_names_in(int layer, bool qwen) {
  MoeNames n;
  n.prefix = layer_prefix(layer) + (qwen ? "mlp." : "block_sparse_moe.");
  n.leaves = qwen ? std::array<const char*, 3>{kMlpLeaves[0], kMlpLeaves[1], kMlpLeaves[2]}
                  : std::array<const char*, 3>{kMixtralLeaves[0], kMixtralLeaves[1], kMixtralLeaves[2]};
  return n;
}

}  // namespace

std::string layer_prefix(int layer) { return "model.layers." + std::to_string(layer) + "."; }

std::string LayerNames::mlp(int part) const { return prefix + "mlp." + kMlpLeaves[part] + ".weight"; }

LayerNames layer_names(int layer) { return {layer_prefix(layer)}; }

std::string MoeNames::shared(int part) const { return prefix + "shared_expert." + kMlpLeaves[part] + ".weight"; }

MoeNames moe_names(const ModelConfig& c, int layer) { return moe_names_in(layer, c.model_type == "qwen2_moe"); }

MoeNames mixtral_moe_names(int layer) { return moe_names_in(layer, false); }

bool is_embedding_name(const std::string& name) { return name == kEmbedTokensName || name == kLmHeadName; }
bool is_attention_name(const std::string& name) { return name.find(".self_attn.") != std::string::npos; }
bool is_router_name(const std::string& name) {
  // Mixtral's block_sparse_moe.gate.{weight, e_score_correction_bias}; Qwen2-MoE's mlp.gate.weight.
  return name.find(".block_sparse_moe.gate.") != std::string::npos ||
         name.find(".mlp.gate.weight") != std::string::npos;
}
bool is_expert_name(const std::string& name) { return name.find(".experts.") != std::string::npos; }
bool is_norm_name(const std::string& name) { return name.find("norm.weight") != std::string::npos; }

bool is_buffer(const std::string& name) { return name.ends_with(kBufferSuffix); }

bool is_trainable(const std::string& name, const std::function<bool(const std::string&)>& frozen) {
  return !is_buffer(name) && !frozen(name);
}

}  // namespace mf

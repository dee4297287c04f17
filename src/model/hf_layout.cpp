#include "model/hf_layout.h"

#include "core/error.h"

namespace mf {

namespace {

bool every_layer_moe(const ModelConfig& c) {
  for (int l = 0; l < c.num_layers; ++l)
    if (!c.layer_is_moe(l)) return false;
  return true;
}

// What neither Mixtral nor Qwen2-MoE (transformers 4.44 and later) computes at inference.
std::vector<std::string> moe_blockers(const ModelConfig& c) {
  std::vector<std::string> out;
  const RoutingConfig& r = c.routing;
  if (r.policy == RouterPolicy::ExpertChoice) out.push_back("router_policy expert_choice");
  // Noise is off at inference, but the noise projection has no tensor name in either layout:
  // transformers would drop it and a model reloaded from there could no longer train as it did.
  if (r.policy == RouterPolicy::NoisyTopK) out.push_back("router_policy noisy_topk (noise projection)");
  if (r.capacity_for(false) > 0) out.push_back("eval_capacity_factor (tokens dropped at inference)");
  if (c.router_selection_bias) out.push_back("router_selection_bias");
  if (!c.layer_experts.empty()) out.push_back("moe_layer_experts (experts per layer differ)");
  if (c.shared_expert_intermediate_size > 0 && !c.shared_expert_gated)
    out.push_back("shared_expert_gate false (an ungated shared expert)");
  // Both read the head size off hidden_size / num_attention_heads.
  if (c.head_dim > 0 && c.num_heads > 0 && c.head_dim * c.num_heads != c.hidden_size)
    out.push_back("head_dim other than hidden_size / num_attention_heads");
  // Llama's attention_bias includes o_proj's; Qwen2-MoE has q/k/v biases only.
  if (c.attention_bias && c.model_type != "qwen2" && c.model_type != "qwen2_moe")
    out.push_back("attention_bias on o_proj");
  return out;
}

// Mixtral: softmax over all experts, top k, renormalised; the same experts in every layer.
bool mixtral_holds(const ModelConfig& c) {
  const RoutingConfig& r = c.routing;
  // top-k-then-softmax gives the renormalised softmax top-k gates exactly.
  const bool gates = (r.policy == RouterPolicy::SoftmaxTopK && r.norm_topk_prob) || r.policy == RouterPolicy::TopKSoftmax;
  return gates && every_layer_moe(c) && c.shared_expert_intermediate_size == 0 && !c.attention_bias &&
         c.model_type != "qwen2_moe";
}

}  // namespace

HfLayout choose_hf_layout(const ModelConfig& c) {
  if (!c.is_moe()) return {c.model_type, {}};
  HfLayout out;
  out.blockers = moe_blockers(c);
  // Qwen2-MoE's eager attention has no sliding window (transformers applies it only with
  // flash-attention), so a windowed model would attend further there.
  if (out.blockers.empty() && !mixtral_holds(c) && c.sliding_window > 0)
    out.blockers.push_back("sliding_window with a layout only qwen2_moe holds");
  if (!out.blockers.empty())
    out.model_type = kMoeforgeOnlyType;
  else
    out.model_type = mixtral_holds(c) ? "mixtral" : "qwen2_moe";
  return out;
}

std::string describe_blockers(const HfLayout& layout) {
  std::string s;
  for (size_t i = 0; i < layout.blockers.size(); ++i) {
    if (i > 0) s += i + 1 == layout.blockers.size() ? " and " : ", ";
    s += layout.blockers[i];
  }
  return s;
}

}  // namespace mf

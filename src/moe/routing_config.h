// How an MoE layer routes tokens to experts: the policy and its capacity rules. This is part of
// a model's config (config.json keys next to Mixtral's, see model/config_json.cpp), because it
// changes what the model computes, at training and at inference alike.
#pragma once
#include <string>

namespace mf {

enum class RouterPolicy {
  SoftmaxTopK,   // Mixtral / Qwen2-MoE: softmax over all experts, keep the top k, optionally renormalise
  TopKSoftmax,   // makeMoE: keep the top k logits, softmax over those k
  Switch,        // Switch Transformer: top-1, gate = that expert's softmax probability
  NoisyTopK,     // Shazeer et al. 2017: logits + N(0,1) * softplus(W_noise x) while training, then top-k softmax
  ExpertChoice,  // Zhou et al. 2022: each expert takes its top tokens up to capacity
};

// "softmax_topk", "topk_softmax", "switch", "noisy_topk", "expert_choice".
const char* router_policy_name(RouterPolicy p);
// Throws mf::Error listing the valid names.
RouterPolicy parse_router_policy(const std::string& name);

struct RoutingConfig {
  RouterPolicy policy = RouterPolicy::SoftmaxTopK;
  bool norm_topk_prob = true;  // softmax_topk: renormalise the k kept probabilities to sum to 1
  // Expert capacity = max(min_capacity, ceil(factor * tokens * k / experts)) routed slots per
  // expert and forward pass (expert choice: factor * tokens / experts tokens). 0: dropless for
  // token choice; for expert choice 0 means "top_k", so that compute matches top-k routing.
  // Slots over capacity are dropped: the token keeps its residual stream for that slot.
  double capacity_factor = 0.0;
  double eval_capacity_factor = -1.0;  // evaluation and inference; < 0: same as capacity_factor
  int min_capacity = 0;

  double capacity_for(bool training) const {
    return training || eval_capacity_factor < 0 ? capacity_factor : eval_capacity_factor;
  }
  // Throws mf::Error naming the bad field.
  void validate(int num_experts, int top_k) const;
};

}  // namespace mf

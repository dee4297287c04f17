// Which transformers architecture a model is written as. A directory moeforge saves must make
// transformers compute what moeforge computes, or make it refuse: writing a model with features
// Mixtral lacks as `mixtral` would have transformers drop those tensors, give missing layers
// fresh random experts and run a different model behind a generic warning.
//
//   dense                 -> its own type (llama, mistral, qwen2)
//   MoE Mixtral can hold  -> mixtral (every layer MoE, softmax top-k renormalised, no shared
//                            expert, no attention bias)
//   MoE Qwen2-MoE holds   -> qwen2_moe (dense layers as mlp_only_layers, a gated shared expert,
//                            top-k without renormalisation incl. Switch, q/k/v biases): missing
//                            parts are written as exact zeros (zero q/k/v biases, a shared
//                            expert of width 0) so that no tensor is missing or new
//   anything else         -> "moeforge": transformers refuses the unknown type by name, moeforge
//                            reads it (Mixtral tensor names), `hf_blockers` lists why
#pragma once
#include <string>
#include <vector>

#include "model/config.h"

namespace mf {

inline constexpr const char* kMoeforgeOnlyType = "moeforge";

struct HfLayout {
  std::string model_type;             // what config.json says
  // Features no transformers architecture computes (empty unless model_type is "moeforge"),
  // each naming the config key, e.g. "router_policy expert_choice".
  std::vector<std::string> blockers;
  bool qwen2_moe() const { return model_type == "qwen2_moe"; }
};

HfLayout choose_hf_layout(const ModelConfig& c);

// "a, b and c" of the blockers, for messages.
std::string describe_blockers(const HfLayout& layout);

}  // namespace mf

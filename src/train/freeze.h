// Which tensors train: freeze lists by name group or glob on HF tensor names.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "model/weights.h"

namespace mf {

// Patterns: "experts" (routed experts' MLPs), "attention" (q/k/v/o and their biases),
// "embeddings" (token embeddings, and the LM head when untied), "router" (MoE gates), "norm"
// (every RMSNorm weight), or a glob on HF names ("model.layers.0.*", "*.w2.weight").
// Throws mf::Error for a pattern that matches no tensor of `weights` (a typo would otherwise
// silently train everything).
std::function<bool(const std::string&)> make_freeze_predicate(const std::vector<std::string>& patterns,
                                                                const ModelWeights& weights);

// True if `name` falls in the group or matches the glob.
bool freeze_pattern_matches(const std::string& pattern, const std::string& name);

}  // namespace mf

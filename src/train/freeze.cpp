#include "train/freeze.h"

#include <fnmatch.h>

#include "core/error.h"

namespace mf {

bool freeze_pattern_matches(const std::string& pattern, const std::string& name) {
  auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  if (pattern == "experts") return has(".experts.");
  if (pattern == "attention") return has(".self_attn.");
  if (pattern == "embeddings") return name == "model.embed_tokens.weight" || name == "lm_head.weight";
  if (pattern == "router") return has(".block_sparse_moe.gate.") || has(".mlp.gate.weight");
  if (pattern == "norm") return has("norm.weight");
  return fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

std::function<bool(const std::string&)> make_freeze_predicate(const std::vector<std::string>& patterns,
                                                                const ModelWeights& weights) {
  for (const std::string& p : patterns) {
    bool any = false;
    for (const auto& [name, t] : weights.tensors) any = any || freeze_pattern_matches(p, name);
    MF_CHECK(any, "freeze: '", p, "' matches no tensor of the model (groups: experts, attention, embeddings, ",
             "router, norm; or a glob on HF names such as 'model.layers.0.*')");
  }
  return [patterns](const std::string& name) {
    for (const std::string& p : patterns)
      if (freeze_pattern_matches(p, name)) return true;
    return false;
  };
}

}  // namespace mf

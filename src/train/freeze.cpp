#include "train/freeze.h"

#include <fnmatch.h>

#include "core/error.h"
#include "model/tensor_names.h"

namespace mf {

bool freeze_pattern_matches(const std::string& pattern, const std::string& name) {
  if (pattern == "experts") return is_expert_name(name);
  if (pattern == "attention") return is_attention_name(name);
  if (pattern == "embeddings") return is_embedding_name(name);
  if (pattern == "router") return is_router_name(name);
  if (pattern == "norm") return is_norm_name(name);
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

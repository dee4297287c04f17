// ModelConfig <-> Hugging Face config.json (llama, mistral, qwen2, mixtral, qwen2_moe).
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/config.h"

namespace mf {

// Reads the keys of the model's own architecture; a key of the wrong type, a missing
// required key or an unsupported feature (rope_scaling, mlp_bias) throws naming the key.
// Keys it does not read are ignored (HF configs carry many); `unread_keys`, when given, receives
// them, for callers that must refuse them.
ModelConfig config_from_hf_json(const nlohmann::json& j, std::vector<std::string>* unread_keys = nullptr);
// Reads and parses `path` (errors name the file).
ModelConfig load_hf_config(const std::string& path);
// Writes standard HF keys (Mixtral keys for a MoE, Qwen2-MoE keys for qwen2_moe) plus
// moeforge's moe_* keys, so standard tools load the result with no custom code.
nlohmann::json config_to_hf_json(const ModelConfig& c);

}  // namespace mf

// generation_config.json: the model author's token ids and sampling defaults.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mf {

struct GenerationConfig {
  int bos_token_id = -1, pad_token_id = -1;
  std::vector<int> eos_token_ids;        // eos_token_id may be an int or a list
  std::optional<bool> do_sample;         // absent: the file does not say (transformers' default is false)
  std::optional<float> temperature, top_p, min_p, repetition_penalty;
  std::optional<int> top_k, max_new_tokens;
};

GenerationConfig generation_config_from_json(const nlohmann::json& j);
// Parses `path`; a missing file gives the defaults (the file is optional in HF directories).
// Errors name the file and key.
GenerationConfig load_generation_config(const std::string& path);

}  // namespace mf

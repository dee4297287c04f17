#include "model/generation_config.h"

#include <filesystem>

#include "io/json_file.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "model/json_fields.h"

namespace mf {
using namespace json_fields;

GenerationConfig generation_config_from_json(const nlohmann::json& j) {
  const char* where = "generation_config.json";
  MF_CHECK(j.is_object(), where, ": expected a JSON object");
  GenerationConfig g;
  g.bos_token_id = get_int(j, "bos_token_id", -1, where);
  g.pad_token_id = get_int(j, "pad_token_id", -1, where);
  g.eos_token_ids = get_int_or_list(j, "eos_token_id", where);
  if (present(j, "do_sample")) g.do_sample = get_bool(j, "do_sample", false, where);
  auto opt_float = [&](const char* key, std::optional<float>& out) {
    if (present(j, key)) out = float(get_double(j, key, 0, where));
  };
  auto opt_int = [&](const char* key, std::optional<int>& out) {
    if (present(j, key)) out = get_int(j, key, 0, where);
  };
  opt_float("temperature", g.temperature);
  opt_float("top_p", g.top_p);
  opt_float("min_p", g.min_p);
  opt_float("repetition_penalty", g.repetition_penalty);
  opt_int("top_k", g.top_k);
  opt_int("max_new_tokens", g.max_new_tokens);
  return g;
}

GenerationConfig load_generation_config(const std::string& path) {
  if (!std::filesystem::exists(path)) return {};
  const nlohmann::json j = read_json_file(path);
  try {
    return generation_config_from_json(j);
  } catch (const Error& e) {
    fail(path, ": ", e.what());
  }
}

}  // namespace mf

#include "io/json_file.h"

#include <filesystem>

#include "core/error.h"
#include "core/mapped_file.h"

namespace mf {

nlohmann::json read_json_file(const std::string& path) {
  const std::string text = read_text_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": not valid JSON: ", e.what());
  }
}

std::string json_excerpt(const nlohmann::json& v) {
  std::string s = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > 200) s = s.substr(0, 200) + "...";
  return s;
}

nlohmann::json read_json_file_if_present(const std::string& path) {
  if (!std::filesystem::exists(path)) return nullptr;
  return read_json_file(path);
}

}  // namespace mf

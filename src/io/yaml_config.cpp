#include "io/yaml_config.h"

#include <cstdlib>
#include <filesystem>
#include <sstream>

#include <yaml-cpp/yaml.h>

namespace mf {

namespace fs = std::filesystem;

namespace {

// YAML scalars carry no type; numbers and booleans are recognised the way YAML 1.2 core does.
nlohmann::json to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::json j = nlohmann::json::object();
      for (const auto& kv : n) j[kv.first.as<std::string>()] = to_json(kv.second);
      return j;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& v : n) j.push_back(to_json(v));
      return j;
    }
    case YAML::NodeType::Scalar: {
      const std::string s = n.Scalar();
      if (n.Tag() == "!") return s;  // quoted: always a string
      if (s == "true" || s == "True") return true;
      if (s == "false" || s == "False") return false;
      if (s == "null" || s == "~" || s.empty()) return nullptr;
      try {
        size_t used = 0;
        const long long i = std::stoll(s, &used);
        if (used == s.size()) return i;
      } catch (...) {
      }
      try {
        size_t used = 0;
        const double d = std::stod(s, &used);
        if (used == s.size()) return d;
      } catch (...) {
      }
      return s;
    }
    default:
      return nullptr;
  }
}

void apply_override(YAML::Node root, const std::string& assignment, const std::string& file) {
  const size_t eq = assignment.find('=');
  MF_CHECK(eq != std::string::npos && eq > 0, file, ": --set wants key.path=value, got '", assignment, "'");
  std::vector<std::string> keys;
  std::stringstream ss(assignment.substr(0, eq));
  for (std::string k; std::getline(ss, k, '.');) keys.push_back(k);
  YAML::Node value = YAML::Load(assignment.substr(eq + 1));
  // yaml-cpp nodes are handles: walking down with operator[] creates missing maps in place.
  std::vector<YAML::Node> path{root};
  for (size_t i = 0; i + 1 < keys.size(); ++i) path.push_back(path.back()[keys[i]]);
  path.back()[keys.back()] = value;
}

}  // namespace

nlohmann::json load_yaml_file(const std::string& path, const std::vector<std::string>& overrides) {
  MF_CHECK(fs::exists(path), path, ": no such recipe");
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    fail(path, ":", e.mark.line + 1, ": invalid YAML: ", e.msg);
  }
  if (!root.IsDefined() || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  for (const std::string& o : overrides) apply_override(root, o, path);
  return to_json(root);
}

ConfigReader::ConfigReader(const nlohmann::json& j, std::string where, std::string file)
    : j_(j), where_(std::move(where)), file_(std::move(file)) {
  MF_CHECK(j_.is_object(), file_, ": '", where_, "' must be a mapping");
}

void ConfigReader::finish() const {
  for (const auto& [k, v] : j_.items()) {
    if (asked_.count(k)) continue;
    std::string list;
    for (const auto& n : asked_) list += (list.empty() ? "" : ", ") + n;
    fail(file_, ": unknown key '", prefix(), k, "' (known here: ", list, ")");
  }
}

ConfigReader ConfigReader::sub(const char* key) const {
  asked_.insert(key);
  return ConfigReader(j_.contains(key) && !j_[key].is_null() ? j_[key] : nlohmann::json::object(), prefix() + key, file_);
}

std::string resolve_recipe_path(const std::string& base_dir, const std::string& p) {
  const fs::path base(base_dir);
  if (p.rfind("~/", 0) == 0) {
    const char* home = std::getenv("HOME");
    return (fs::path(home ? home : "") / p.substr(2)).lexically_normal().string();
  }
  return (base / p).lexically_normal().string();
}

}  // namespace mf

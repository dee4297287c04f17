#include "io/yaml_config.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>
#include <yaml-cpp/yaml.h>

#include "core/mapped_file.h"
#include "io/text_check.h"

namespace mf {

namespace fs = std::filesystem;

namespace {

// Recipes are small; these bounds only stop hostile ones. An alias (*name) is refused outright:
// a 1 KB file of aliases of aliases expands to gigabytes when read as a tree.
constexpr int kMaxRecipeNesting = 32;
constexpr uintmax_t kMaxRecipeBytes = uintmax_t(4) << 20;

// Walks the file's parse events before any tree is built: no aliases, bounded nesting.
class RecipeShapeCheck final : public YAML::EventHandler {
 public:
  explicit RecipeShapeCheck(const std::string& path) : path_(path) {}
  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark& m, YAML::anchor_t) override {
    fail(path_, ":", m.line + 1, ": YAML aliases (*name) are not accepted in recipes; write the value out");
  }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    enter(m);
  }
  void OnSequenceEnd() override { --depth_; }
  void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    enter(m);
  }
  void OnMapEnd() override { --depth_; }

 private:
  void enter(const YAML::Mark& m) {
    if (++depth_ > kMaxRecipeNesting)
      fail(path_, ":", m.line + 1, ": mappings and lists nested deeper than ", kMaxRecipeNesting, " levels");
  }
  const std::string& path_;
  int depth_ = 0;
};

void check_recipe_shape(const std::string& path) {
  std::error_code ec;
  MF_CHECK(fs::is_regular_file(path, ec), path, ": not a file");
  const uintmax_t bytes = fs::file_size(path, ec);
  MF_CHECK(!ec, path, ": cannot read (", ec.message(), ")");
  MF_CHECK(bytes <= kMaxRecipeBytes, path, ": ", bytes, " bytes is too large for a recipe (at most ", kMaxRecipeBytes,
           ")");
  const std::string text = read_text_file(path);
  check_text(text, path);  // YAML is UTF-8 text; yaml-cpp would pass other bytes through
  std::istringstream in(text);
  YAML::Parser parser(in);
  RecipeShapeCheck check(path);
  parser.HandleNextDocument(check);
  // LoadFile reads the first document only, so a second one would be ignored in silence. (Only
  // one more is asked for: on some malformed input yaml-cpp reports documents forever.)
  RecipeShapeCheck rest(path);
  MF_CHECK(!parser.HandleNextDocument(rest), path, ": more than one YAML document (---); a recipe is one document");
}

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
    check_recipe_shape(path);
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    fail(path, ":", e.mark.line + 1, ": invalid YAML: ", e.msg);
  }
  if (!root.IsDefined() || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  try {
    for (const std::string& o : overrides) apply_override(root, o, path);
    return to_json(root);
  } catch (const YAML::Exception& e) {
    // e.g. a mapping used as a key, which no recipe key can be
    fail(path, ": unexpected structure: ", e.msg);
  }
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

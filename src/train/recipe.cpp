#include "train/recipe.h"

#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "core/error.h"

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

class Reader {
 public:
  Reader(const nlohmann::json& j, std::string where, std::string file) : j_(j), where_(std::move(where)), file_(std::move(file)) {
    MF_CHECK(j_.is_object(), file_, ": '", where_, "' must be a mapping");
  }
  // Fails on a key the caller did not read: typos must not be silently ignored.
  void finish(const std::set<std::string>& known) const {
    for (const auto& [k, v] : j_.items()) {
      if (known.count(k)) continue;
      std::string list;
      for (const auto& n : known) list += (list.empty() ? "" : ", ") + n;
      fail(file_, ": unknown key '", prefix(), k, "' (known here: ", list, ")");
    }
  }
  template <class T>
  void get(const char* key, T& out) const {
    if (!j_.contains(key) || j_[key].is_null()) return;
    try {
      out = j_[key].get<T>();
    } catch (const nlohmann::json::exception&) {
      fail(file_, ": '", prefix(), key, "' has the wrong type (", j_[key].dump(), ")");
    }
  }
  nlohmann::json raw(const char* key) const { return j_.contains(key) ? j_[key] : nlohmann::json(); }
  Reader sub(const char* key) const {
    static const nlohmann::json empty = nlohmann::json::object();
    return Reader(j_.contains(key) && !j_[key].is_null() ? j_[key] : empty, prefix() + key, file_);
  }

 private:
  std::string prefix() const { return where_.empty() ? "" : where_ + "."; }
  const nlohmann::json& j_;
  std::string where_, file_;
};

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

namespace {

// Relative paths are relative to the recipe's folder; "~/" is the home directory.
std::string resolve(const fs::path& base, const std::string& p) {
  if (p.rfind("~/", 0) == 0) {
    const char* home = std::getenv("HOME");
    return (fs::path(home ? home : "") / p.substr(2)).lexically_normal().string();
  }
  return (base / p).lexically_normal().string();
}

}  // namespace

Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides) {
  MF_CHECK(fs::exists(path), path, ": no such recipe");
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    fail(path, ":", e.mark.line + 1, ": invalid YAML: ", e.msg);
  }
  if (!root.IsDefined() || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  for (const std::string& o : overrides) apply_override(root, o, path);
  const nlohmann::json j = to_json(root);
  Recipe r;
  r.path = path;
  const fs::path base = fs::path(path).parent_path();
  Reader top(j, "", path);

  const Reader model = top.sub("model");
  model.get("init", r.init);
  model.get("seed", r.init_seed);
  model.get("init_std", r.init_std);
  r.config = model.raw("config");
  MF_CHECK(r.config.is_null() || r.config.is_object(), path, ": 'model.config' must be a mapping of config.json keys");
  if (r.init != "scratch") r.init = resolve(base, r.init);
  model.finish({"init", "seed", "init_std", "config"});

  top.get("tokenizer", r.tokenizer);
  if (r.tokenizer != "char" && r.tokenizer != "model") r.tokenizer = resolve(base, r.tokenizer);

  const Reader data = top.sub("data");
  auto files = [&](const char* key, std::vector<std::string>& out) {
    const nlohmann::json v = data.raw(key);
    if (v.is_string()) out.push_back(v.get<std::string>());
    else if (v.is_array())
      for (const auto& f : v) {
        MF_CHECK(f.is_string(), path, ": 'data.", key, "' must name a file or a list of files");
        out.push_back(f.get<std::string>());
      }
    else MF_CHECK(v.is_null(), path, ": 'data.", key, "' must name a file or a list of files");
    for (auto& f : out) f = resolve(base, f);
  };
  files("train", r.train_files);
  MF_CHECK(!r.train_files.empty(), path, ": 'data.train' must name a file or a list of files");
  files("valid", r.valid_files);
  data.get("format", r.data_format);
  MF_CHECK(r.data_format == "auto" || r.data_format == "text" || r.data_format == "sft", path,
           ": 'data.format' must be auto, text or sft, got '", r.data_format, "'");
  data.get("valid_fraction", r.valid_fraction);
  data.get("domains", r.domains);
  data.get("skip_bad", r.skip_bad);
  data.finish({"train", "valid", "format", "valid_fraction", "domains", "skip_bad"});

  top.get("freeze", r.freeze);

  TrainerConfig& t = r.trainer;
  const Reader tr = top.sub("train");
  tr.get("steps", t.steps);
  tr.get("batch", t.batch);
  tr.get("seq_len", t.seq_len);
  tr.get("grad_accum", t.grad_accum);
  tr.get("lr", t.lr);
  tr.get("moe_lr_scale", t.moe_lr_scale);
  tr.get("min_lr_ratio", t.min_lr_ratio);
  tr.get("warmup", t.warmup);
  tr.get("weight_decay", t.weight_decay);
  tr.get("beta1", t.beta1);
  tr.get("beta2", t.beta2);
  tr.get("eps", t.eps);
  tr.get("clip", t.clip);
  tr.get("lb_coef", t.lb_coef);
  tr.get("z_coef", t.z_coef);
  tr.get("eval_every", t.eval_every);
  tr.get("eval_windows", t.eval_windows);
  tr.get("checkpoint_every", t.checkpoint_every);
  tr.get("seed", t.seed);
  tr.get("max_minutes", t.max_minutes);
  tr.finish({"steps", "batch", "seq_len", "grad_accum", "lr", "moe_lr_scale", "min_lr_ratio", "warmup", "weight_decay", "beta1",
             "beta2", "eps", "clip", "lb_coef", "z_coef", "eval_every", "eval_windows", "checkpoint_every", "seed",
             "max_minutes"});

  top.get("output", t.out_dir);
  MF_CHECK(!t.out_dir.empty(), path, ": 'output' (the run directory) is required");

  const Reader sample = top.sub("sample");
  sample.get("prompt", r.sample_prompt);
  sample.get("max_tokens", r.sample_tokens);
  sample.get("temperature", r.sample_temperature);
  sample.finish({"prompt", "max_tokens", "temperature"});

  top.finish({"model", "tokenizer", "data", "freeze", "train", "output", "sample"});
  return r;
}

}  // namespace mf

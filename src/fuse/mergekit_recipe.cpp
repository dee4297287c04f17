#include "fuse/mergekit_recipe.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "io/yaml_config.h"

namespace mf {

namespace {

// mergekit's dtype names (and the short ones moeforge's --dtype takes) -> moeforge's.
std::string saved_dtype(const std::string& name, const std::string& file) {
  if (name == "float32" || name == "fp32" || name == "f32") return "f32";
  if (name == "float16" || name == "fp16" || name == "f16") return "f16";
  if (name == "bfloat16" || name == "bf16") return "bf16";
  fail(file, ": 'dtype' must be float32, float16 or bfloat16, got '", name, "'");
}

// A mergekit model reference: a local folder or file. mergekit also takes Hugging Face Hub ids
// (which it downloads) and "model+lora" pairs; moeforge reads neither, and says what to do.
std::string local_model(const std::string& base, const std::string& ref, const std::string& key,
                        const std::string& file) {
  MF_CHECK(!ref.empty(), file, ": '", key, "' is empty");
  const std::string path = resolve_recipe_path(base, ref);
  if (std::filesystem::exists(path)) return path;
  MF_CHECK(ref.find('+') == std::string::npos, file, ": '", key, "' = '", ref,
           "' names a model with a LoRA adapter (model+lora); merge the adapter into the model first "
           "and give that folder");
  // "owner/name" is how the Hub names models; anything else is a path that is not there.
  const bool hub_id = std::count(ref.begin(), ref.end(), '/') == 1 && ref.front() != '/' && ref.front() != '.' &&
                      ref.front() != '~';
  MF_CHECK(!hub_id, file, ": '", key, "' = '", ref, "' is not a local folder or file (", path,
           "); moeforge does not download from the Hugging Face Hub: fetch it first (e.g. `huggingface-cli download ",
           ref, " --local-dir DIR`) and give DIR");
  fail(file, ": '", key, "' = '", ref, "': no such folder or file (", path, ")");
}

// The source's folder name (or file stem), as mergekit users see their experts; a folder named
// "model" is moeforge's run layout (runs/NAME/model), where the run's name says more.
std::string default_name(const std::string& ref) {
  std::filesystem::path p = std::filesystem::path(ref).lexically_normal();
  while (!p.empty() && p.filename().empty()) p = p.parent_path();  // "dir/" -> "dir"
  if (p.filename() == "model" && !p.parent_path().filename().empty()) p = p.parent_path();
  std::string name = p.extension() == ".gguf" ? p.stem().string() : p.filename().string();
  return name.empty() ? ref : name;
}

// Two sources with one folder name ("a/model", "b/model") still need two names.
std::string unique_name(std::string name, std::set<std::string>& taken) {
  if (taken.insert(name).second) return name;
  for (int i = 2;; ++i)
    if (taken.insert(name + "-" + std::to_string(i)).second) return name + "-" + std::to_string(i);
}

void apply_gate_mode(const std::string& mode, FuseRecipe& r, const std::string& file) {
  if (mode == "hidden" || mode == "hidden_avg") {
    r.router_init = "prompts";
    r.hidden = PromptHidden::ffn_input_mean;
    r.router_note = "gate_mode " + mode + ": prompts read where the router reads (the FFN's normed input, token mean)";
  } else if (mode == "hidden_last") {
    r.router_init = "prompts";
    r.hidden = PromptHidden::layer_input_last;
    r.router_note = "gate_mode hidden_last: prompts' residual stream entering each layer, last token";
  } else if (mode == "cheap_embed") {
    r.router_init = "prompts";
    r.hidden = PromptHidden::token_embedding_mean;
    r.router_note = "gate_mode cheap_embed: the prompts' mean token embedding, the same at every layer";
  } else if (mode == "random") {
    r.router_init = "random";
    r.random_std = 1.0f;  // mergekit draws torch.randn
    r.router_note = "gate_mode random: N(0, 1), as mergekit-moe draws";
  } else if (mode == "uniform_random") {
    r.router_init = "uniform";
    r.router_note = "gate_mode uniform_random: U(-1/sqrt(hidden), 1/sqrt(hidden)), torch.nn.Linear's default";
  } else {
    fail(file, ": 'gate_mode' must be hidden, hidden_avg, hidden_last, cheap_embed, random or uniform_random, got '",
         mode, "'");
  }
}

}  // namespace

bool is_mergekit_moe_recipe(const nlohmann::json& recipe) {
  return recipe.is_object() && recipe.contains("base_model") && !recipe.contains("skeleton");
}

FuseRecipe fuse_recipe_from_mergekit(const nlohmann::json& j, const std::string& path) {
  FuseRecipe r;
  r.path = path;
  r.format = "mergekit-moe";
  const std::string base = std::filesystem::path(path).parent_path().string();
  ConfigReader top(j, "", path);
  std::string base_model;
  top.get("base_model", base_model);
  r.fuse.skeleton = local_model(base, base_model, "base_model", path);

  // What moeforge cannot build is refused by name rather than ignored.
  MF_CHECK(top.raw("shared_experts").is_null(), path,
           ": 'shared_experts' (mergekit's Qwen2-MoE / DeepSeek layouts) is not supported: moeforge fuses into the "
           "Mixtral layout; fuse without shared experts or train one with `moeforge train` (moe.shared_experts)");
  std::string architecture = "mixtral";
  top.get("architecture", architecture);
  MF_CHECK(architecture == "mixtral", path, ": 'architecture' = '", architecture,
           "' is not supported: moeforge fuses into the Mixtral layout only");

  const nlohmann::json experts = top.raw("experts");
  MF_CHECK(experts.is_array() && !experts.empty(), path,
           ": 'experts' must be a list of {source_model, positive_prompts, negative_prompts}");
  std::string gate_mode = "hidden";
  top.get("gate_mode", gate_mode);
  apply_gate_mode(gate_mode, r, path);
  std::set<std::string> taken;
  for (size_t i = 0; i < experts.size(); ++i) {
    const std::string key = "experts[" + std::to_string(i) + "]";
    MF_CHECK(experts[i].is_object(), path, ": '", key, "' must be a mapping with source_model");
    const ConfigReader e(experts[i], key, path);
    std::string source;
    e.get("source_model", source);
    ExpertSource src;
    src.path = local_model(base, source, key + ".source_model", path);
    e.get("name", src.name);  // moeforge's addition
    src.name = unique_name(src.name.empty() ? default_name(source) : src.name, taken);
    e.get("noise_scale", src.noise_scale);
    e.get("residual_scale", src.residual_scale);
    MF_CHECK(src.noise_scale >= 0, path, ": '", key, ".noise_scale' must be >= 0");
    ExpertPrompts prompts;
    e.get("positive_prompts", prompts.positive);
    e.get("negative_prompts", prompts.negative);
    e.finish();
    MF_CHECK(r.router_init != "prompts" || !prompts.positive.empty(), path, ": '", key,
             ".positive_prompts' is required with gate_mode ", gate_mode, " (or use gate_mode: random)");
    r.fuse.experts.push_back(std::move(src));
    r.prompts.push_back(std::move(prompts));
  }
  if (r.router_init == "prompts" && r.prompts.size() > 1) {
    // Identical prompts give identical routers: every expert would score the same (mergekit
    // refuses this too).
    bool all_same = true;
    for (const ExpertPrompts& p : r.prompts)
      all_same = all_same && p.positive == r.prompts[0].positive && p.negative == r.prompts[0].negative;
    MF_CHECK(!all_same, path, ": every expert has the same positive and negative prompts, so every router row "
             "would be the same; give each expert prompts of its own domain");
  }
  r.fuse.top_k = 2;
  top.get("experts_per_token", r.fuse.top_k);
  MF_CHECK(r.fuse.top_k >= 1 && size_t(r.fuse.top_k) <= r.fuse.experts.size(), path, ": 'experts_per_token' = ",
           r.fuse.top_k, " must be in [1, ", r.fuse.experts.size(), "]");
  std::string dtype;
  top.get("dtype", dtype);
  if (!dtype.empty()) r.dtype = saved_dtype(dtype, path);

  // moeforge's own keys, beside mergekit's.
  top.get("output", r.output);
  if (!r.output.empty()) r.output = resolve_recipe_path("", r.output);
  r.fuse.average_shared = read_average_shared(top);
  const ConfigReader ri = top.sub("router_init");
  ri.get("temperature", r.temperature);
  ri.get("seed", r.seed);
  ri.finish();
  r.fuse.noise_seed = r.seed;
  top.finish();
  return r;
}

}  // namespace mf

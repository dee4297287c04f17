#include "fuse/fuse_recipe.h"

#include <filesystem>

#include "fuse/mergekit_recipe.h"
#include "io/yaml_config.h"

namespace mf {

bool read_average_shared(const ConfigReader& recipe) {
  std::string shared = "skeleton";
  recipe.get("shared", shared);
  MF_CHECK(shared == "skeleton" || shared == "average", recipe.file(), ": 'shared' must be skeleton or average, got '",
           shared, "'");
  return shared == "average";
}

FuseRecipe load_fuse_recipe(const std::string& path, const std::vector<std::string>& overrides) {
  const nlohmann::json j = load_yaml_file(path, overrides);
  if (is_mergekit_moe_recipe(j)) return fuse_recipe_from_mergekit(j, path);
  FuseRecipe r;
  r.path = path;
  const std::string base = std::filesystem::path(path).parent_path().string();
  ConfigReader top(j, "", path);
  top.get("skeleton", r.fuse.skeleton);
  MF_CHECK(!r.fuse.skeleton.empty(), path, ": 'skeleton' (the model whose attention and embeddings are kept) is required");
  r.fuse.skeleton = resolve_recipe_path(base, r.fuse.skeleton);
  const nlohmann::json experts = top.raw("experts");
  MF_CHECK(experts.is_array() && !experts.empty(), path, ": 'experts' must be a list of {name, source, positive, negative}");
  for (size_t i = 0; i < experts.size(); ++i) {
    const ConfigReader e(experts[i], "experts[" + std::to_string(i) + "]", path);
    ExpertSource src;
    ExpertPrompts prompts;
    e.get("name", src.name);
    e.get("source", src.path);
    MF_CHECK(!src.name.empty() && !src.path.empty(), path, ": experts[", i, "] needs a name and a source");
    src.path = resolve_recipe_path(base, src.path);
    e.get("noise_scale", src.noise_scale);        // as mergekit-moe's (fuse.h)
    e.get("residual_scale", src.residual_scale);
    e.get("positive", prompts.positive);
    e.get("negative", prompts.negative);
    e.finish();
    r.fuse.experts.push_back(std::move(src));
    r.prompts.push_back(std::move(prompts));
  }
  top.get("top_k", r.fuse.top_k);
  r.fuse.average_shared = read_average_shared(top);
  const ConfigReader ri = top.sub("router_init");
  ri.get("method", r.router_init);
  MF_CHECK(r.router_init == "prompts" || r.router_init == "random" || r.router_init == "uniform" ||
               r.router_init == "zeros",
           path, ": 'router_init.method' must be prompts, random, uniform or zeros, got '", r.router_init, "'");
  std::string hidden = to_string(r.hidden);
  ri.get("hidden", hidden);
  r.hidden = prompt_hidden_from_string(hidden);
  ri.get("temperature", r.temperature);
  ri.get("seed", r.seed);
  ri.get("std", r.random_std);
  ri.finish();
  r.fuse.noise_seed = r.seed;
  top.get("output", r.output);
  std::string dtype;
  top.get("dtype", dtype);
  MF_CHECK(dtype.empty() || dtype == "f32" || dtype == "f16" || dtype == "bf16", path,
           ": 'dtype' must be f32, f16 or bf16, got '", dtype, "'");
  r.dtype = dtype;
  top.finish();
  return r;
}

}  // namespace mf

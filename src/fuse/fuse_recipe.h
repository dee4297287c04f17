// Fusion recipes (YAML): skeleton, named expert sources with their router prompts, top-k, how
// shared tensors and routers start, and where the fused model goes. Strict keys, --set overrides.
//
//   skeleton: ~/.cache/moeforge/SmolLM2-135M-Instruct.Q4_1.gguf
//   experts:
//     - {name: Coder, source: runs/experts/coder/model, positive: ["Write a function..."], negative: []}
//   top_k: 2
//   shared: skeleton            # or average
//   router_init: {method: prompts, hidden: ffn_input, temperature: 1.0, seed: 0, std: 0.02}
//   output: runs/smolmoe/fused
//   dtype: bf16                 # saved dtype (default: as the sources store them)
//
// A mergekit-moe recipe (base_model, gate_mode, experts[].source_model, ...) is read as it is
// (fuse/mergekit_recipe.h).
#pragma once
#include <string>
#include <vector>

#include "fuse/fuse.h"
#include "fuse/router_init.h"

namespace mf {

struct FuseRecipe {
  std::string path;
  FuseOptions fuse;
  std::vector<ExpertPrompts> prompts;  // per expert (method prompts)
  std::string router_init = "prompts"; // prompts | random | zeros
  PromptHidden hidden = PromptHidden::ffn_input_mean;
  float temperature = 1.0f;
  uint64_t seed = 0;
  float random_std = 0.02f;
  std::string output;                  // relative to the working directory, as in train recipes
  std::string dtype;                   // saved dtype (f32, f16, bf16); empty: as the sources
  std::string format = "moeforge";     // or "mergekit-moe": the form the recipe was written in
  std::string router_note;             // how the router initialisation was chosen, for the log
};

class ConfigReader;
// The `shared` key (skeleton | average) of a recipe in either form: whether shared tensors are
// the mean over all sources. Throws mf::Error naming the file for another value.
bool read_average_shared(const ConfigReader& recipe);

// Paths of sources are relative to the recipe's folder. Throws mf::Error naming file and key.
FuseRecipe load_fuse_recipe(const std::string& path, const std::vector<std::string>& overrides = {});

}  // namespace mf

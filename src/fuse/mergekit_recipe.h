// mergekit-moe recipes, read as they are: `moeforge fuse config.yml OUT` takes the YAML a
// `mergekit-moe config.yml OUT` user already has and builds the same kind of model (a Mixtral
// layout whose experts are the sources' MLPs). The mapping, key by key:
//
//   base_model          -> skeleton (attention, embeddings, norms and config)
//   experts[].source_model, positive_prompts, negative_prompts
//                       -> an expert named after the source's folder (or its `name:`), with its
//                          router prompts
//   experts[].noise_scale, residual_scale -> ExpertSource's knobs of the same names
//   experts_per_token   -> top_k (default 2, as mergekit)
//   gate_mode hidden, hidden_avg -> prompts read where moeforge's router reads (the FFN's normed
//                          input, token mean); hidden_last -> the residual stream entering the
//                          layer at the last token (mergekit's own hidden state); cheap_embed ->
//                          the prompts' mean token embedding at every layer; random -> N(0, 1)
//                          as mergekit draws; uniform_random -> U(+-1/sqrt(hidden)).
//   dtype float32 | float16 | bfloat16 -> the saved dtype
//
// moeforge's own keys may sit beside them (output, shared, router_init's temperature and seed).
// What moeforge cannot build is refused by name: shared_experts (Qwen2-MoE/DeepSeek layouts),
// architectures other than mixtral, LoRA references, models that are not on local disk.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "fuse/fuse_recipe.h"

namespace mf {

// A fusion recipe in mergekit-moe's form (it names base_model rather than skeleton).
bool is_mergekit_moe_recipe(const nlohmann::json& recipe);

// Reads it into moeforge's recipe. Relative paths are relative to the recipe's folder.
// Throws mf::Error naming the file and key.
FuseRecipe fuse_recipe_from_mergekit(const nlohmann::json& recipe, const std::string& path);

}  // namespace mf

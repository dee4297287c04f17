// moeforge fuse RECIPE.yaml and moeforge upcycle -m MODEL --experts E: dense models into a
// Mixtral-layout MoE directory (config, safetensors, tokenizer, chat template).
#include <cstdio>
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"
#include "core/timer.h"
#include "fuse/fuse_recipe.h"
#include "infer/model_files.h"
#include "model/load.h"
#include "model/save.h"

namespace mf::cli {

namespace {

nlohmann::json summary(const ModelWeights& w, const std::string& out, double seconds) {
  return {{"output", out},
          {"experts", w.config.num_experts},
          {"top_k", w.config.top_k},
          {"expert_names", w.config.expert_names},
          {"params_total", count_parameters(w.config, false)},
          {"params_active", count_parameters(w.config, true)},
          {"seconds", seconds}};
}

HfSaveOptions save_options(const std::string& dtype) {
  HfSaveOptions o;
  if (!dtype.empty()) o.dtype = parse_hf_dtype(dtype);
  return o;
}

}  // namespace

int run_fuse(const std::vector<std::string>& args_in) {
  const std::vector<std::string>& args = args_in;
  std::string recipe_path, output_positional;
  std::vector<std::string> sets;
  std::string output, dtype;
  bool quiet = false;
  ArgParser p("moeforge fuse RECIPE.yaml [OUTPUT_DIR] [options]",
              "Fuses dense models into one Mixtral-layout MoE: the skeleton's embeddings, attention and norms (or "
              "their average), expert e = source e's MLP in every layer, and a new router per layer initialised from "
              "prompts, randomly or at zero. Writes an HF directory that standard tools load. Takes moeforge's "
              "recipes and mergekit-moe's as they are (docs/smolmoe.md).");
  p.positional("RECIPE.yaml", "the sources and the fusion (examples/smolmoe/fuse.yaml, docs/smolmoe.md)", &recipe_path, true);
  p.positional("OUTPUT_DIR", "output directory, as mergekit-moe takes it (same as -o)", &output_positional);
  p.repeated("set", "KEY=VALUE", "override a recipe key, e.g. --set top_k=1", &sets);
  p.option("output", 'o', "DIR", "output directory (overrides output)", &output);
  p.option("dtype", 0, "T", "weights as f32, f16 or bf16 (default: as the sources store them)", &dtype);
  p.flag("quiet", "no progress messages", &quiet);
  p.example("moeforge fuse examples/smolmoe/fuse.yaml -o runs/smolmoe/fused", "fuse dense fine-tunes into one MoE (docs/smolmoe.md)");
  p.example("moeforge fuse mergekit-config.yml ./my-moe", "a mergekit-moe recipe, unchanged");
  if (!parse_or_usage(p, args)) return 0;
  if (!output_positional.empty()) {
    if (!output.empty() && output != output_positional)
      throw UsageError("two output directories: OUTPUT_DIR '" + output_positional + "' and -o '" + output + "'");
    output = output_positional;
  }
  // -o stands for the recipe's output key, so a recipe without one runs with it.
  if (!output.empty()) sets.push_back("output=" + std::filesystem::absolute(output).string());
  FuseRecipe r = load_fuse_recipe(recipe_path, sets);
  if (r.output.empty())
    throw UsageError(recipe_path + " names no output directory: give OUTPUT_DIR or -o DIR, or set its 'output' key");
  if (!dtype.empty()) r.dtype = dtype;
  Timer timer;
  auto log = [&](const std::string& m) {
    if (!quiet) std::fprintf(stderr, "[fuse %.0fs] %s\n", timer.seconds(), m.c_str());
  };
  if (r.format != "moeforge") log(r.format + " recipe " + recipe_path);
  if (!r.router_note.empty()) log(r.router_note);
  ModelWeights moe = fuse_experts(r.fuse, log);
  if (r.router_init == "prompts") {
    log(std::string("routers from prompts (") + to_string(r.hidden) + ")");
    Transformer skeleton(load_model_weights(r.fuse.skeleton));
    const TokenizerFiles tf = load_tokenizer_files(r.fuse.skeleton);
    init_routers_from_prompts(moe, skeleton, *tf.tokenizer, r.prompts, r.hidden, r.temperature);
  } else if (r.router_init == "random") {
    init_routers_random(moe, r.seed, r.random_std);
  } else if (r.router_init == "uniform") {
    init_routers_uniform(moe, r.seed);
  } else {
    init_routers_zero(moe);
  }
  log("writing " + r.output);
  warn_if_moeforge_only(save_model_weights(moe, r.output, save_options(r.dtype)), r.output);
  copy_tokenizer_files(r.fuse.skeleton, r.output);
  std::cout << summary(moe, r.output, timer.seconds()).dump() << std::endl;
  return 0;
}

int run_upcycle(const std::vector<std::string>& args) {
  std::string model, output, router = "random", dtype;
  int experts = 8, top_k = 2;
  float noise = 0.0f;
  uint64_t seed = 0;
  ArgParser p("moeforge upcycle -m MODEL --experts E -o DIR [options]",
              "Sparse upcycling: one dense model becomes a Mixtral-layout MoE whose E experts start as copies of its "
              "MLP (optionally with a little noise so they can diverge in training) and whose routers are new.");
  p.option("model", 'm', "PATH", "dense model (HF directory or .gguf)", &model, true);
  p.option("output", 'o', "DIR", "output directory", &output, true);
  p.option("experts", "E", "number of experts (default 8)", &experts);
  p.option("top-k", "K", "experts per token (default 2)", &top_k);
  p.option("noise", "X", "Gaussian noise, relative to each matrix's RMS, added to every copy (default 0)", &noise);
  p.option("seed", "S", "seed for the noise and random routers (default 0)", &seed);
  p.option("router", 0, "INIT", "router initialisation: random (default) or zeros", &router);
  p.option("dtype", 0, "T", "weights as f32, f16 or bf16 (default: as the model stores them)", &dtype);
  p.example("moeforge upcycle -m models/SmolLM2-135M-Instruct --experts 4 -o runs/upcycled", "copy each MLP into 4 experts with a new router");
  if (!parse_or_usage(p, args)) return 0;
  if (router != "random" && router != "zeros") throw UsageError("--router must be random or zeros");
  Timer timer;
  ModelWeights moe = upcycle(load_model_weights(model), experts, top_k, noise, seed);
  if (router == "random") init_routers_random(moe, seed);
  warn_if_moeforge_only(save_model_weights(moe, output, save_options(dtype)), output);
  copy_tokenizer_files(model, output);
  std::cout << summary(moe, output, timer.seconds()).dump() << std::endl;
  return 0;
}

}  // namespace mf::cli

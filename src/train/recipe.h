// Training recipes (YAML): one format for pretraining from scratch, fine-tuning and router-only
// training. Unknown keys are errors naming their path; `--set a.b=value` overrides any key.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/trainer.h"

namespace mf {

struct Recipe {
  std::string path;                     // the recipe file (relative data paths start here)
  // model:
  std::string init = "scratch";         // "scratch", or an HF directory / .gguf to start from
  nlohmann::json config;                // scratch: HF config.json keys (vocab_size from the tokenizer)
  uint64_t init_seed = 0;
  float init_std = 0.02f;
  // tokenizer: "char" (built from the training text), "model" (the init model's own), or a
  // path to a tokenizer.json or to a .gguf whose vocabulary to use
  std::string tokenizer = "char";
  // data:
  std::vector<std::string> train_files; // .txt (whole file) or .jsonl ({"text": ...} per line)
  double valid_fraction = 0.1;
  // what does not train
  std::vector<std::string> freeze;
  TrainerConfig trainer;                // train: (out_dir comes from output:)
  // sample: after training, generate from this prompt
  std::string sample_prompt;
  int sample_tokens = 200;
  float sample_temperature = 0.8f;
};

// Reads `path`, applies overrides ("train.lr=3e-4", YAML values), validates every key.
// Throws mf::Error naming the file and the key path.
Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides = {});

}  // namespace mf

// Training recipes (YAML): one format for pretraining from scratch, fine-tuning and router-only
// training. Unknown keys are errors naming their path; `--set a.b=value` overrides any key.
#pragma once
#include <cstdint>
#include <map>
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
  // format "text": .txt (whole file) or .jsonl ({"text": ...} per line), packed into windows;
  // "sft": unified instruction JSONL, chat-templated, loss on answer tokens only;
  // "auto": sft when the first .jsonl record has an "instruction" field
  std::string data_format = "auto";
  std::vector<std::string> train_files;
  std::vector<std::string> valid_files; // sft: the validation split (else valid_fraction of train)
  double valid_fraction = 0.1;
  std::vector<std::string> domains;     // sft: keep only records of these domains
  bool skip_bad = false;                // sft: skip malformed records (counted) instead of failing
  // sft: which assistant turns of a whole conversation (chat-format data) carry loss:
  // "all_assistant" or "last_assistant" (data.loss_on; other records score their answer only)
  std::string loss_on = "all_assistant";
  // sft: how an epoch draws records (train/sft_data.h SftSampling): "mix" in the mix's own
  // proportions, or "balanced": domains drawn evenly, or by data.domain_weights (domain name ->
  // weight >= 0, unnamed domains 1)
  std::string sampling = "mix";
  std::map<std::string, double> domain_weights;
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

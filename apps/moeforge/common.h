// Pieces shared by the generating subcommands: the sampling/context flags, model loading
// and the speed report.
#pragma once
#include <string>
#include <vector>

#include "core/error.h"
#include "infer/bundle.h"
#include "cli_args.h"
#include "infer/generate.h"
#include "model/hf_layout.h"
#include "model/kv_cache.h"

namespace mf::cli {

// Thrown for bad command lines; main() turns it into exit status 2.
struct UsageError : Error {
  using Error::Error;
};

struct RunFlags {
  std::string model_path;
  std::string system;
  std::vector<std::string> stop;
  SamplingParams sampling;
  int max_tokens = 256;
  int threads = 0;
  int ctx = 4096;
  int window = 0;       // GenerateOptions::window
  bool verbose = false;
  std::string device = "auto";  // auto | cpu | cuda
  bool int8 = false;    // int8 activations for Q4_0/Q4_1/Q8_0 decode (LoadOptions::int8_decode)
  bool ignore_eos = false;  // generate --max-tokens tokens whatever the model samples
  std::string cache_type_k = "f32", cache_type_v = "f32";  // the KV cache's element types
  int expert_cache_mib = 0;  // LoadOptions::expert_cache_bytes, in MiB (0: no limit)
};

// --cache-type-k / --cache-type-v (-ctk / -ctv, as llama.cpp spells them), for every command that
// keeps a KV cache; kv_cache_types() turns the values into types (UsageError when unknown).
void add_kv_cache_flags(ArgParser& p, std::string& key_type, std::string& value_type);
KVCacheTypes kv_cache_types(const std::string& key_type, const std::string& value_type);

// --expert-cache MiB, for every command that decodes a model on the CPU; expert_cache_bytes()
// checks the value (UsageError when negative) and turns it into LoadOptions::expert_cache_bytes.
void add_expert_cache_flag(ArgParser& p, int& mib);
size_t expert_cache_bytes(int mib);

// Registers -m and the shared sampling/context flags.
void add_run_flags(ArgParser& p, RunFlags& f);
// Parses; returns false after printing help. Wraps parse errors in UsageError.
bool parse_or_usage(ArgParser& p, const std::vector<std::string>& args);
// Fills the sampling values not given on the command line from the model's
// generation_config.json (when it has them), draws a random seed unless --seed was given, checks
// the flags and loads the model.
ModelBundle load_for_run(RunFlags& f, const ArgParser& p);
GenerateOptions generate_options(const RunFlags& f, const ModelBundle& m);
// To stderr; with `verbose` the wall and CPU seconds of each phase as well.
void print_stats(const GenerateStats& s, bool verbose = false);
// To stderr, for a MoE whose routed experts were packed for decode: copies made and dropped, and
// what they take now (--verbose).
void print_expert_copies(const ModelBundle& m);
// To stderr, when a saved directory is moeforge's own type: which features transformers lacks.
void warn_if_moeforge_only(const HfLayout& layout, const std::string& dir);

}  // namespace mf::cli

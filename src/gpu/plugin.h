// The CUDA engine as the CLI reaches it: a shared module (libmoeforge_cuda_plugin.so, installed next
// to the executable) that the CLI loads only when a run may use a GPU. Linking cuBLAS into the
// executable mapped and initialised ~0.2 GB of it at every start, GPU or not (docs/benchmarks.md,
// "Memory of moeforge train"); a CPU run of a CUDA-enabled build now never loads it.
//
// The module carries its own copy of the moeforge library; what crosses the boundary are moeforge's
// own types (built from the same sources by the same compiler), and errors cross as mf::Error.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "infer/language_model.h"
#include "model/config.h"
#include "model/weights.h"
#include "train/trainable_model.h"

namespace mf::gpu {

struct Plugin {
  int abi_version;  // kPluginAbi of the build that made the module
  int (*device_count)();
  // Empty when the CUDA path runs this model, else what it lacks (named for the user).
  std::string (*training_unsupported)(const ModelConfig& c);
  std::string (*inference_unsupported)(const ModelConfig& c);
  std::unique_ptr<TrainableModel> (*make_trainable_model)(ModelWeights weights,
                                                          const std::function<bool(const std::string&)>& frozen);
  std::unique_ptr<LanguageModel> (*make_language_model)(ModelWeights weights, int max_len);
};

// Bumped whenever Plugin or a type crossing it changes, so a stale module is refused by name.
constexpr int kPluginAbi = 1;

// The module's file name and its one exported symbol.
inline constexpr const char* kPluginFile = "libmoeforge_cuda_plugin.so";
inline constexpr const char* kPluginSymbol = "moeforge_cuda_plugin";

}  // namespace mf::gpu

extern "C" const mf::gpu::Plugin* moeforge_cuda_plugin();

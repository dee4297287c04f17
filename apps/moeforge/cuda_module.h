// Finds and loads the CUDA module (src/gpu/plugin.h) for a run that may use a GPU.
#pragma once
#include <string>

#include "gpu/plugin.h"

namespace mf::cli {

// The loaded module, or null with the reason in *why_not: the build has no CUDA, the machine has
// no NVIDIA driver (then nothing is loaded: CPU runs never map the CUDA libraries), the module is
// missing or fails to load, or it comes from another build. Loaded once per process and kept.
const gpu::Plugin* cuda_module(std::string* why_not);

}  // namespace mf::cli

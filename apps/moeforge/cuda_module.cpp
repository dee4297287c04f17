#include "cuda_module.h"

#include <dlfcn.h>
#include <unistd.h>

#include <filesystem>
#include <system_error>

namespace mf::cli {

namespace fs = std::filesystem;

namespace {

struct Loaded {
  const gpu::Plugin* plugin = nullptr;
  std::string why_not;
};

fs::path executable_dir() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : self.parent_path();
}

Loaded load() {
#ifndef MOEFORGE_HAVE_CUDA
  return {nullptr, "this moeforge was built without CUDA (configure with nvcc present)"};
#else
  // No driver, no GPU: checked before loading anything, so a CPU machine never maps cuBLAS.
  std::error_code ec;
  if (!fs::exists("/proc/driver/nvidia/version", ec) && !fs::exists("/dev/nvidiactl", ec))
    return {nullptr, "no CUDA device on this machine"};
  const fs::path dir = executable_dir();
  std::string tried;
  for (const fs::path& candidate : {dir / gpu::kPluginFile, dir / ".." / "lib" / "moeforge" / gpu::kPluginFile}) {
    if (!fs::exists(candidate, ec)) {
      tried += (tried.empty() ? "" : ", ") + candidate.string();
      continue;
    }
    // Never closed: the models it makes run its code until the process ends.
    void* handle = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) return {nullptr, "cannot load the CUDA module " + candidate.string() + ": " + dlerror()};
    auto entry = reinterpret_cast<const gpu::Plugin* (*)()>(dlsym(handle, gpu::kPluginSymbol));
    if (!entry) return {nullptr, "the CUDA module " + candidate.string() + " has no " + gpu::kPluginSymbol};
    const gpu::Plugin* plugin = entry();
    if (!plugin || plugin->abi_version != gpu::kPluginAbi)
      return {nullptr, "the CUDA module " + candidate.string() + " comes from another moeforge build (ABI " +
                           std::to_string(plugin ? plugin->abi_version : -1) + ", this one " +
                           std::to_string(gpu::kPluginAbi) + "); reinstall them together"};
    return {plugin, ""};
  }
  return {nullptr, std::string("the CUDA module ") + gpu::kPluginFile + " is not installed (looked for " + tried + ")"};
#endif
}

}  // namespace

const gpu::Plugin* cuda_module(std::string* why_not) {
  static const Loaded loaded = load();  // the process's one module: loading twice would map it twice
  if (!loaded.plugin && why_not) *why_not = loaded.why_not;
  return loaded.plugin;
}

}  // namespace mf::cli

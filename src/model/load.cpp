#include "model/load.h"

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/safetensors.h"
#include "model/config_json.h"
#include "model/packed_experts.h"
#include "model/tensor_names.h"

namespace mf {
namespace fs = std::filesystem;

namespace {

bool has_gguf_magic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::string(magic, 4) == "GGUF";
}

}  // namespace

ModelWeights load_hf_weights(const std::string& dir) {
  const fs::path config = fs::path(dir) / "config.json";
  MF_CHECK(fs::exists(config), dir, ": no config.json in the model directory");
  ModelWeights w;
  w.config = load_hf_config(config.string());
  w.tensors = load_safetensors(dir);
  w.source = dir;
  if (w.config.tie_word_embeddings) w.tensors.erase(kLmHeadName);  // HF ignores it when tied
  unpack_packed_experts(w);
  return w;
}

ModelWeights load_model_weights(const std::string& path) {
  MF_CHECK(fs::exists(path), path, ": no such file or directory");
  if (fs::is_directory(path)) return load_hf_weights(path);
  MF_CHECK(has_gguf_magic(path), path, ": neither a model directory nor a GGUF file");
  return load_gguf_weights(GgufFile::open(path));
}

}  // namespace mf

#include "model/save.h"

#include <filesystem>

#include "core/mapped_file.h"
#include "model/tensor_names.h"
#include "io/safetensors.h"
#include "model/config_json.h"

namespace mf {

void save_model_weights(const ModelWeights& w, const std::string& dir, size_t max_shard_bytes) {
  std::filesystem::create_directories(dir);
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, t] : w.tensors) {
    if (name == kLmHeadName && w.config.tie_word_embeddings) continue;
    const bool plain = t.dtype() == DType::F32 || t.dtype() == DType::F16 || t.dtype() == DType::BF16;
    tensors.emplace_back(name, plain ? t : t.to_f32());
  }
  save_safetensors_dir(dir, tensors, max_shard_bytes, {{"format", "pt"}});
  const std::string config = config_to_hf_json(w.config).dump(2) + "\n";
  write_file_atomic((std::filesystem::path(dir) / "config.json").string(), config.data(), config.size());
}

}  // namespace mf

// Writing weights as a Hugging Face model directory: config.json and safetensors under the HF
// names (sharded with an index when large), in the transformers layout that computes the same
// model (model/hf_layout: Mixtral, Qwen2-MoE with the exact zeros it needs, or moeforge's own
// type that transformers refuses). Block-quantized tensors (Q4_1, ...) have no safetensors dtype
// and are written as fp32 unless a dtype is asked for; F32/F16/BF16 keep theirs. A tied head is
// not written twice. Every file is written atomically.
#pragma once
#include <optional>
#include <string>

#include "core/dtype.h"
#include "model/hf_layout.h"
#include "model/weights.h"

namespace mf {

inline constexpr size_t kDefaultShardBytes = size_t(4) << 30;

struct HfSaveOptions {
  size_t max_shard_bytes = kDefaultShardBytes;
  // F32, F16 or BF16 for every parameter (buffers stay F32); unset: as stored.
  std::optional<DType> dtype;
};

// Returns the layout written, so callers can tell the user when transformers will refuse it.
HfLayout save_model_weights(const ModelWeights& w, const std::string& dir, const HfSaveOptions& opts = {});

// "f32" / "f16" / "bf16" (any case, also float32, float16, bfloat16) -> the DType; throws mf::Error naming
// the flag's value otherwise.
DType parse_hf_dtype(const std::string& name);

}  // namespace mf

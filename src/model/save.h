// Writing weights as a Hugging Face model directory: config.json and safetensors under the HF
// names (sharded with an index when large). Block-quantized tensors (Q4_1, ...) have no
// safetensors dtype and are written as fp32; F32/F16/BF16 keep their dtype. A tied head is
// not written twice. Every file is written atomically.
#pragma once
#include <cstddef>
#include <string>

#include "model/weights.h"

namespace mf {

inline constexpr size_t kDefaultShardBytes = size_t(4) << 30;

void save_model_weights(const ModelWeights& w, const std::string& dir, size_t max_shard_bytes = kDefaultShardBytes);

}  // namespace mf

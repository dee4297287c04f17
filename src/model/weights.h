// ModelWeights: a config plus every weight tensor under its Hugging Face name, whatever file
// it came from. Tensors keep their stored dtype (F32/F16/BF16/Q8_0/Q4_1/...) and are usually
// zero-copy views into a file mapping.
#pragma once
#include <map>
#include <string>

#include "core/tensor.h"
#include "model/config.h"

namespace mf {

struct ModelWeights {
  ModelConfig config;
  std::map<std::string, Tensor> tensors;  // HF names ("model.layers.0.self_attn.q_proj.weight")
  std::string source;                     // the path it was loaded from (for error messages)
};

}  // namespace mf

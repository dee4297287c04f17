// A trainable tensor as the model exposes it and the optimizer consumes it: name, fp32 master
// values and the gradient buffer beside them.
#pragma once
#include <span>
#include <string>

namespace mf {

struct TrainableParam {
  std::string name;             // HF tensor name
  std::span<float> value;       // fp32 master weights
  std::span<const float> grad;  // same size
  int group = 0;                // index into the optimizer's parameter groups
};

}  // namespace mf

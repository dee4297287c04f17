// Weights for training from scratch: every tensor a ModelConfig needs, under its HF name.
#pragma once
#include <cstdint>

#include "model/weights.h"

namespace mf {

// Matrices ~ N(0, std^2), with the projections that write into the residual stream (o_proj,
// down_proj / w2) scaled by 1/sqrt(2 * layers) as in GPT-2, norms 1, biases 0. fp32. The same
// config and seed give the same weights. Throws mf::Error for an invalid config.
ModelWeights init_random_weights(const ModelConfig& config, uint64_t seed, float std = 0.02f);

}  // namespace mf

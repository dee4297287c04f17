// The top of the decoder in training, on the CPU: final RMSNorm, LM head and masked
// cross-entropy, and their backward. The head runs only on rows with a target (instruction data
// scores answers alone, and the vocabulary projection is the widest matrix of a small model),
// in chunks of rows that bound the [rows, vocab] logits buffer.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "model/config.h"
#include "model/layer_weights.h"

namespace mf {

struct LmHeadGrads {
  float* final_norm = nullptr;
  float* head = nullptr;  // the embedding's gradient when tied (null: frozen)
};

struct LmHeadScratch {
  std::vector<float> hf, logits, head_in, head_dx;
  std::vector<int64_t> rows;  // rows with a target
  std::vector<int32_t> targets;
};

// Sum of the cross-entropy over rows with a target >= 0 of x_final [N, H]. When dx is given,
// it receives d x_final [N, H] (written) of lm_scale * that sum, and the head and final-norm
// weight gradients in g are accumulated.
double lm_head_train(const ModelConfig& c, const TransformerWeights& W, const LmHeadGrads& g, const float* x_final,
                     std::span<const int32_t> targets, float lm_scale, float* dx, LmHeadScratch& s);

}  // namespace mf

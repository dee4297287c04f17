// The top of the decoder in training on the GPU (twin of model/lm_head_train.h): final RMSNorm,
// LM head and masked cross-entropy fused with its gradient, over the rows with a target only,
// in chunks of rows that bound the [rows, vocab] bf16 logits; and the backward to the residual.
#pragma once
#include <cstdint>

#include "gpu/device_step.h"
#include "gpu/param_store.h"
#include "kernels/cuda/softmax_xent.h"
#include "model/config.h"

namespace mf::gpu {

struct LmHeadTensors {
  const DeviceTensor* final_norm = nullptr;
  const DeviceTensor* head = nullptr;  // the embedding when tied
};

// The rows the loss scores: device [count] row indices and their targets.
struct ScoredRows {
  const int32_t* rows = nullptr;
  const int32_t* targets = nullptr;
  int64_t count = 0;
};

// Returns the device totals of the summed loss. With b, b->dx receives d x_final [N, H] of
// lm_scale * that sum (written) and the head and final-norm gradients accumulate.
cuda::CrossEntropyTotals* lm_head_train(DeviceStep& d, const ModelConfig& c, const LmHeadTensors& W,
                                        const float* x_final, int64_t N, const ScoredRows& scored, float lm_scale,
                                        const BackwardBuffers* b);

}  // namespace mf::gpu

// CUDA LM-head loss (twin of kernels/cpu/softmax_xent.h): softmax cross-entropy of a chunk of
// bf16 logits with masked rows, fused with its logit gradient written over the logits, and a
// deterministic reduction of the per-row losses. Device pointers; asynchronous on `stream`, no
// synchronisation, no allocation.
#pragma once
#include <cstdint>

#include "kernels/cuda/device.h"

namespace mf::cuda {

// One block per row, V visited grid-stride with an online max / sum of exp in fp32 (one read of
// the row for the statistics, one more for the gradient). logits: [rows, vocab] bf16;
// targets: [rows] int32, a negative target marks a row without loss (prompt, padding).
// row_loss: [rows] fp32 receives -log softmax(logits)[target], 0 for rows without a target.
// When grad_scale != 0, logits are overwritten by dlogits = grad_scale * (softmax - onehot(target))
// (zeros for rows without a target); when it is 0 the logits are left as they are (evaluation).
// Targets come from host data, so the caller checks them there (< vocab); on the device a row
// whose target is >= vocab gets a NaN loss (so the summed loss shows it) and a zero gradient.
void cross_entropy_forward_backward(bf16* logits, const int32_t* targets, int64_t rows, int64_t vocab,
                                    float grad_scale, float* row_loss, cudaStream_t stream);

// Summed loss and number of counted rows (target >= 0), kept on the device. Same layout as the
// CPU's CrossEntropySums.
struct CrossEntropyTotals {
  double loss_sum = 0;
  int64_t counted = 0;
};

// totals += (sum of row_loss over rows with target >= 0, count of those rows). One block in a
// fixed order, so the result does not depend on timing; accumulating (+=) lets one totals span
// all row chunks of the head and all micro-batches of a step (zero it with cudaMemsetAsync).
void sum_rows(const float* row_loss, const int32_t* targets, int64_t rows, CrossEntropyTotals* totals,
              cudaStream_t stream);

}  // namespace mf::cuda

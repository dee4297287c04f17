// The shared expert's entry into the residual stream (Qwen2-MoE): out += sigmoid(gate_logit) * y
// per token, or out += y when ungated, and its backward. Device pointers; asynchronous on
// `stream`, no synchronisation, no allocation.
#pragma once
#include <cstdint>

#include "kernels/cuda/device.h"

namespace mf::cuda {

// out [rows, H] fp32 += s_t * y[t] with s_t = sigmoid(gate_logits[t]), or 1 when gate_logits is
// null. y: [rows, H] bf16.
void sigmoid_gated_add(const bf16* y, const float* gate_logits, int64_t rows, int64_t H, float* out,
                       cudaStream_t stream);

// From dout [rows, H] fp32: dy[t] = bf16(s_t * dout[t]) (written), and when gated
// dgate_logits[t] = dot(dout[t], y[t]) * s_t * (1 - s_t) (written; untouched when ungated).
void sigmoid_gated_add_backward(const float* dout, const bf16* y, const float* gate_logits, int64_t rows, int64_t H,
                                bf16* dy, float* dgate_logits, cudaStream_t stream);

}  // namespace mf::cuda

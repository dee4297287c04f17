// The shared expert's entry into the residual stream (Qwen2-MoE): out += sigmoid(gate_logit) * y
// per token, or out += y when ungated, and its backward. The CUDA twin is kernels/cuda/gated_add.
#pragma once
#include <cstdint>

namespace mf {

// out [rows, H] += s_t * y[t] with s_t = sigmoid(gate_logits[t]), or 1 when gate_logits is null.
void sigmoid_gated_add(const float* y, const float* gate_logits, int64_t rows, int64_t H, float* out);

// From dout [rows, H]: dy[t] = s_t * dout[t] (written), and when gated
// dgate_logits[t] = dot(dout[t], y[t]) * s_t * (1 - s_t) (written; untouched when ungated).
// The dot product accumulates in double.
void sigmoid_gated_add_backward(const float* dout, const float* y, const float* gate_logits, int64_t rows, int64_t H,
                                float* dy, float* dgate_logits);

}  // namespace mf

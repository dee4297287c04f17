// Elementwise activations of the feed-forward block (fp32, on the work pool for long inputs).
#pragma once
#include <cstdint>

namespace mf {

// out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)). out may alias gate or up.
void silu_mul(const float* gate, const float* up, float* out, int64_t n);

// Backward of silu_mul from its inputs and dout: with s = sigmoid(gate),
//   dgate = dout * up * s * (1 + gate * (1 - s)),  dup = dout * gate * s.
// Written, not accumulated. dgate may alias gate and dup may alias up (each element is read
// before it is written), but neither may alias dout.
void silu_mul_backward(const float* gate, const float* up, const float* dout, float* dgate, float* dup, int64_t n);
// y[i] += x[i]  (residual connections).
void add_inplace(float* y, const float* x, int64_t n);

}  // namespace mf

// Elementwise activations of the feed-forward block (fp32, OpenMP-parallel for long inputs).
#pragma once
#include <cstdint>

namespace mf {

// out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)). out may alias gate or up.
void silu_mul(const float* gate, const float* up, float* out, int64_t n);
// y[i] += x[i]  (residual connections).
void add_inplace(float* y, const float* x, int64_t n);

}  // namespace mf

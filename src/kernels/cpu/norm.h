// Normalisation layers (fp32).
#pragma once
#include <cstdint>

namespace mf {

// RMSNorm as in Llama: y = x / sqrt(mean(x^2) + eps) * weight, row by row.
// x, y: [rows, dim] (y may alias x); weight: [dim].
void rmsnorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, float* y);

}  // namespace mf

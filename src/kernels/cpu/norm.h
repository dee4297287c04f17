// Normalisation layers (fp32).
#pragma once
#include <cstdint>

namespace mf {

// RMSNorm as in Llama: y = x / sqrt(mean(x^2) + eps) * weight, row by row.
// x, y: [rows, dim] (y may alias x); weight: [dim].
void rmsnorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, float* y);

// Backward of rmsnorm, from the forward's input x and the output gradient dy (both [rows, dim]).
// With r = 1/sqrt(mean(x^2) + eps) and g = weight * dy:
//   dx = r * g - r^3 * x * (g . x) / dim        (written, not accumulated; may alias dy)
//   dweight += sum over rows of dy * x * r      (skipped when dweight is null: frozen norm)
void rmsnorm_backward(const float* x, const float* weight, const float* dy, int64_t rows, int64_t dim, float eps,
                      float* dx, float* dweight);

}  // namespace mf

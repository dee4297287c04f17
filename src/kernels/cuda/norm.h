// CUDA RMSNorm (twin of kernels/cpu/norm.h) for mixed-precision training: the residual stream is
// fp32, the normalised output that feeds the next matmul is bf16 (fp32 variant for the final
// norm), norm weights, statistics and weight gradients are fp32. All pointers are device memory;
// every function is asynchronous on `stream`, never synchronises and never allocates.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/device.h"

namespace mf::cuda {

// y = x / sqrt(mean(x^2) + eps) * weight, row by row. x: [rows, dim] fp32, weight: [dim] fp32,
// y: [rows, dim]. rstd (nullable): [rows] receives 1 / sqrt(mean(x^2) + eps), which is what
// rmsnorm_backward reads. The fp32-output overload may write y over x.
void rmsnorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, bf16* y, float* rstd,
             cudaStream_t stream);
void rmsnorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, float* y, float* rstd,
             cudaStream_t stream);

// Fused residual add and norm: residual += delta (fp32 += bf16, written back), then
// y = rmsnorm(residual) as above (rstd nullable). The updated residual is the `x` that
// rmsnorm_backward wants.
void add_rmsnorm(float* residual, const bf16* delta, const float* weight, int64_t rows, int64_t dim, float eps,
                 bf16* y, float* rstd, cudaStream_t stream);
void add_rmsnorm(float* residual, const bf16* delta, const float* weight, int64_t rows, int64_t dim, float eps,
                 float* y, float* rstd, cudaStream_t stream);

// Backward of rmsnorm from the forward's input x, its saved rstd (r, [rows], required) and the
// output gradient dy. With g = weight * dy:
//   dx += r * g - r^3 * x * (g . x) / dim      (accumulated into the residual gradient)
//   dweight += sum over rows of dy * x * r     (skipped when dweight is null: frozen norm)
// dweight is deterministic: each block sums its rows (fixed partition that depends on rows
// only) into a partial row in `scratch`, then a second kernel adds the partials in block order.
// scratch: rmsnorm_backward_scratch_bytes(rows, dim) bytes (may be null when dweight is null).
// dx must not alias x.
size_t rmsnorm_backward_scratch_bytes(int64_t rows, int64_t dim);
void rmsnorm_backward(const bf16* dy, const float* x, const float* weight, const float* rstd, int64_t rows,
                      int64_t dim, float* dx, float* dweight, void* scratch, cudaStream_t stream);

}  // namespace mf::cuda

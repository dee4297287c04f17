// CUDA RMSNorm (twin of kernels/cpu/norm.h). Pointers are device memory; fp32 for now,
// bf16 compute arrives with the GPU training issue.
#pragma once
#include <cstdint>

namespace mf::cuda {

void rmsnorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, float* y);

}  // namespace mf::cuda

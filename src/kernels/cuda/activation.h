// CUDA element-wise activations (twins of kernels/cpu/activation.h); device pointers.
#pragma once
#include <cstdint>

namespace mf::cuda {

void silu_mul(const float* gate, const float* up, float* out, int64_t n);

}  // namespace mf::cuda

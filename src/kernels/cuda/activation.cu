#include <cuda_runtime.h>

#include "kernels/cuda/activation.h"
#include "kernels/cuda/device.h"

namespace mf::cuda {

namespace {

__global__ void silu_mul_kernel(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    out[i] = g / (1.f + __expf(-g)) * up[i];
  }
}

}  // namespace

void silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  if (n == 0) return;
  constexpr int kThreads = 256;
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  silu_mul_kernel<<<unsigned(blocks < 65535 ? blocks : 65535), kThreads>>>(gate, up, out, n);
  check(cudaGetLastError(), "silu_mul launch");
}

}  // namespace mf::cuda

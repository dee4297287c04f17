#include <cuda_runtime.h>

#include "kernels/cuda/device.h"
#include "kernels/cuda/norm.h"

namespace mf::cuda {

namespace {

// One block per row; the sum of squares is reduced in fp32 through shared memory.
__global__ void rmsnorm_kernel(const float* x, const float* weight, int64_t dim, float eps,
                               float* y) {
  extern __shared__ float partial[];
  const float* row = x + blockIdx.x * dim;
  float* out = y + blockIdx.x * dim;
  float sum = 0.f;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) sum += row[i] * row[i];
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (unsigned stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  const float inv = rsqrtf(partial[0] / float(dim) + eps);
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) out[i] = row[i] * inv * weight[i];
}

}  // namespace

void rmsnorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, float* y) {
  if (rows == 0) return;
  constexpr int kThreads = 256;
  rmsnorm_kernel<<<unsigned(rows), kThreads, kThreads * sizeof(float)>>>(x, weight, dim, eps, y);
  check(cudaGetLastError(), "rmsnorm launch");
}

}  // namespace mf::cuda

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/rows.h"

namespace mf::cuda {

namespace {

// One block per listed row; threads stride over the row's elements.
__global__ void gather_rows_kernel(const bf16* src, const int32_t* index, int64_t width, bf16* dst) {
  const bf16* from = src + int64_t(index[blockIdx.x]) * width;
  bf16* to = dst + int64_t(blockIdx.x) * width;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) to[i] = from[i];
}

__global__ void scatter_rows_kernel(const bf16* src, const int32_t* index, int64_t width, bf16* dst) {
  const bf16* from = src + int64_t(blockIdx.x) * width;
  bf16* to = dst + int64_t(index[blockIdx.x]) * width;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) to[i] = from[i];
}

}  // namespace

void gather_rows(const bf16* src, const int32_t* index, int64_t count, int64_t width, bf16* dst, cudaStream_t stream) {
  if (count == 0) return;
  gather_rows_kernel<<<unsigned(count), 256, 0, stream>>>(src, index, width, dst);
  check_launch("gather_rows");
}

void scatter_rows(const bf16* src, const int32_t* index, int64_t count, int64_t width, bf16* dst, cudaStream_t stream) {
  if (count == 0) return;
  scatter_rows_kernel<<<unsigned(count), 256, 0, stream>>>(src, index, width, dst);
  check_launch("scatter_rows");
}

}  // namespace mf::cuda

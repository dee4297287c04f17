#include "gpu/device_step.h"

#include <cuda_runtime_api.h>

#include "kernels/cuda/norm.h"

namespace mf::gpu {

BackwardBuffers alloc_backward_buffers(cuda::DeviceArena& A, int64_t rows, int64_t hidden) {
  const size_t n = size_t(rows * hidden);
  BackwardBuffers b;
  b.dx = A.alloc<float>(n, "residual gradient");
  b.dh = A.alloc<float>(n, "branch gradient (fp32)");
  b.dxb = A.alloc<bf16>(n, "residual gradient (bf16)");
  b.dhb = A.alloc<bf16>(n, "branch gradient (bf16)");
  b.norm_scratch = A.allocate(cuda::rmsnorm_backward_scratch_bytes(rows, hidden), "rmsnorm backward scratch");
  return b;
}

void copy_to_device(void* device, const void* host, size_t bytes, const char* what, cudaStream_t stream) {
  if (bytes) cuda::check(cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, stream), what);
}

void copy_to_host(void* host, const void* device, size_t bytes, const char* what, cudaStream_t stream) {
  if (bytes) cuda::check(cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, stream), what);
}

void zero_device(void* device, size_t bytes, cudaStream_t stream) {
  if (bytes) cuda::check(cudaMemsetAsync(device, 0, bytes, stream), "cudaMemsetAsync");
}

void copy_device(void* dst, const void* src, size_t bytes, cudaStream_t stream) {
  if (bytes) cuda::check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream), "cudaMemcpyAsync");
}

}  // namespace mf::gpu

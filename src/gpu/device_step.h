// What every block of the CUDA engine needs for one call: the cuBLAS handle, the stream it runs
// on, and the arena its activations come from; plus the rows of a training call and the small
// host/device copies the blocks share.
#pragma once
#include <cstdint>
#include <span>

#include "kernels/cuda/device.h"
#include "kernels/cuda/matmul.h"
#include "kernels/cuda/rope.h"

namespace mf::gpu {

using cuda::bf16;
using cuda::OutType;

struct DeviceStep {
  cuda::Blas& blas;
  const cuda::Stream& stream;
  cuda::DeviceArena& arena;
  cudaStream_t s() const { return stream.get(); }
};

// The rows of one training call: `batch` sequences of `seq_len` tokens, each from position 0.
struct DeviceSequenceBatch {
  int batch = 1;
  int64_t seq_len = 0;
  const int32_t* positions = nullptr;  // device [rows]
  const cuda::DeviceRopeTable* rope = nullptr;
  int64_t rows() const { return int64_t(batch) * seq_len; }
};

// The gradient buffers the blocks' backwards share, taken once per step: the residual gradient
// and a branch gradient, each in fp32 and bf16 (what the GEMMs read), and the RMSNorm
// backward's scratch.
struct BackwardBuffers {
  float *dx = nullptr, *dh = nullptr;
  bf16 *dxb = nullptr, *dhb = nullptr;
  void* norm_scratch = nullptr;
};
BackwardBuffers alloc_backward_buffers(cuda::DeviceArena& arena, int64_t rows, int64_t hidden);

// Asynchronous copies and fills on `stream`, checked and named by `what`.
void copy_to_device(void* device, const void* host, size_t bytes, const char* what, cudaStream_t stream);
void copy_to_host(void* host, const void* device, size_t bytes, const char* what, cudaStream_t stream);
void zero_device(void* device, size_t bytes, cudaStream_t stream);
void copy_device(void* dst, const void* src, size_t bytes, cudaStream_t stream);

// `host` copied into fresh arena memory (asynchronously: host must outlive the stream's work).
template <class T>
T* upload_to(cuda::DeviceArena& arena, std::span<const T> host, const char* what, cudaStream_t stream) {
  T* device = arena.alloc<T>(host.empty() ? 1 : host.size(), what);
  if (!host.empty()) copy_to_device(device, host.data(), host.size_bytes(), what, stream);
  return device;
}

}  // namespace mf::gpu

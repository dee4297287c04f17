// Linear-layer biases (Qwen2's q/k/v projections): added to a GEMM's output, and the bias
// gradient as deterministic column sums. Device pointers; asynchronous on `stream`, no
// synchronisation, no allocation.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/device.h"

namespace mf::cuda {

// y[r, c] += bias[c] for y [rows, cols] in bf16 (rounded once) or fp32; bias fp32 [cols].
void add_bias(bf16* y, const float* bias, int64_t rows, int64_t cols, cudaStream_t stream);
void add_bias(float* y, const float* bias, int64_t rows, int64_t cols, cudaStream_t stream);

// dbias[c] += sum over rows of dy[r, c], summed per fixed row chunk and then over the chunks in
// order (no atomics: reruns are bit-identical). scratch: bias_backward_scratch_bytes(rows, cols).
size_t bias_backward_scratch_bytes(int64_t rows, int64_t cols);
void bias_backward(const bf16* dy, int64_t rows, int64_t cols, float* dbias, void* scratch, cudaStream_t stream);
void bias_backward(const float* dy, int64_t rows, int64_t cols, float* dbias, void* scratch, cudaStream_t stream);

}  // namespace mf::cuda

// CUDA SwiGLU activation (twin of kernels/cpu/activation.h): bf16 in and out, math in fp32.
// gate and up are rows of a common stride, so both halves of a fused [rows, 2I] gate_up
// projection are read in place (gate = buf, up = buf + I, in_stride = 2I). Device pointers;
// asynchronous on `stream`, no synchronisation, no allocation.
#pragma once
#include <cstdint>

#include "kernels/cuda/device.h"

namespace mf::cuda {

// out[r, c] = silu(gate[r, c]) * up[r, c] for c < width, silu(g) = g / (1 + exp(-g)).
// gate/up rows start in_stride elements apart (in_stride >= width); out is [rows, width] dense.
void silu_mul(const bf16* gate, const bf16* up, int64_t rows, int64_t width, int64_t in_stride, bf16* out,
              cudaStream_t stream);

// Backward of silu_mul from its inputs and dout ([rows, width] dense): with s = sigmoid(gate),
//   dgate = dout * up * s * (1 + gate * (1 - s)),  dup = dout * gate * s
// written (not accumulated) with the same row stride as gate/up, so they can fill a fused
// [rows, 2I] gradient buffer. dgate may alias gate and dup may alias up (each element is read
// before it is written); neither may alias dout.
void silu_mul_backward(const bf16* gate, const bf16* up, const bf16* dout, int64_t rows, int64_t width,
                       int64_t in_stride, bf16* dgate, bf16* dup, cudaStream_t stream);

}  // namespace mf::cuda

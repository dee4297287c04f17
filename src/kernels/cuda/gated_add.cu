#include "core/error.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gated_add.h"

namespace mf::cuda {

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float gate_of(const float* gate_logits, int64_t t) {
  return gate_logits ? 1.0f / (1.0f + expf(-gate_logits[t])) : 1.0f;
}

// One block per token; the gate is one scalar per row.
__global__ void gated_add_kernel(const bf16* y, const float* gate_logits, int64_t H, float* out) {
  const int64_t t = blockIdx.x;
  const float s = gate_of(gate_logits, t);
  const bf16* row = y + t * H;
  float* dst = out + t * H;
  for (int64_t i = threadIdx.x; i < H; i += blockDim.x) dst[i] += s * __bfloat162float(row[i]);
}

__global__ void gated_add_backward_kernel(const float* dout, const bf16* y, const float* gate_logits, int64_t H,
                                          bf16* dy, float* dgate_logits) {
  __shared__ float scratch[32];
  const int64_t t = blockIdx.x;
  const float s = gate_of(gate_logits, t);
  const float* g = dout + t * H;
  const bf16* row = y + t * H;
  float dot = 0.0f;
  for (int64_t i = threadIdx.x; i < H; i += blockDim.x) {
    dy[t * H + i] = __float2bfloat16_rn(s * g[i]);
    dot += g[i] * __bfloat162float(row[i]);
  }
  if (!gate_logits) return;  // uniform across the block: no thread reaches the reduction's barriers
  dot = block_sum(dot, scratch);
  if (threadIdx.x == 0) dgate_logits[t] = dot * s * (1.0f - s);
}

}  // namespace

void sigmoid_gated_add(const bf16* y, const float* gate_logits, int64_t rows, int64_t H, float* out,
                       cudaStream_t stream) {
  MF_CHECK(rows >= 0 && H > 0, "sigmoid_gated_add: bad shape ", rows, " x ", H);
  if (rows == 0) return;
  MF_CHECK(rows <= INT32_MAX, "sigmoid_gated_add: ", rows, " rows exceed one grid");
  gated_add_kernel<<<unsigned(rows), kThreads, 0, stream>>>(y, gate_logits, H, out);
  check_launch("sigmoid_gated_add");
}

void sigmoid_gated_add_backward(const float* dout, const bf16* y, const float* gate_logits, int64_t rows, int64_t H,
                                bf16* dy, float* dgate_logits, cudaStream_t stream) {
  MF_CHECK(rows >= 0 && H > 0, "sigmoid_gated_add_backward: bad shape ", rows, " x ", H);
  MF_CHECK(!gate_logits || dgate_logits, "sigmoid_gated_add_backward: a gated add needs dgate_logits");
  if (rows == 0) return;
  MF_CHECK(rows <= INT32_MAX, "sigmoid_gated_add_backward: ", rows, " rows exceed one grid");
  gated_add_backward_kernel<<<unsigned(rows), kThreads, 0, stream>>>(dout, y, gate_logits, H, dy, dgate_logits);
  check_launch("sigmoid_gated_add_backward");
}

}  // namespace mf::cuda

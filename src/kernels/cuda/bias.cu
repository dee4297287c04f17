#include <algorithm>

#include "core/error.h"
#include "kernels/cuda/bias.h"
#include "kernels/cuda/common.cuh"

namespace mf::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxChunks = 256;  // row chunks of the first reduction stage

int64_t chunks_for(int64_t rows) { return std::min<int64_t>(std::max<int64_t>(rows, 1), kMaxChunks); }

template <class T>
__global__ void add_bias_kernel(T* y, const float* bias, int64_t rows, int64_t cols) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x)
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
      y[r * cols + c] = from_float<T>(to_float(y[r * cols + c]) + bias[c]);
}

// Block b sums rows [b * per, (b+1) * per) of every column into partial[b, :].
template <class T>
__global__ void column_partials_kernel(const T* dy, int64_t rows, int64_t cols, int64_t per, float* partial) {
  const int64_t r0 = int64_t(blockIdx.x) * per, r1 = min(rows, r0 + per);
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    float s = 0.0f;
    for (int64_t r = r0; r < r1; ++r) s += to_float(dy[r * cols + c]);
    partial[int64_t(blockIdx.x) * cols + c] = s;
  }
}

__global__ void column_total_kernel(const float* partial, int64_t chunks, int64_t cols, float* dbias) {
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < cols; c += int64_t(gridDim.x) * blockDim.x) {
    float s = 0.0f;
    for (int64_t k = 0; k < chunks; ++k) s += partial[k * cols + c];
    dbias[c] += s;
  }
}

template <class T>
void add_bias_impl(T* y, const float* bias, int64_t rows, int64_t cols, cudaStream_t stream) {
  MF_CHECK(rows >= 0 && cols > 0, "add_bias: bad shape ", rows, " x ", cols);
  if (rows == 0) return;
  add_bias_kernel<<<unsigned(std::min<int64_t>(rows, 65535)), kThreads, 0, stream>>>(y, bias, rows, cols);
  check_launch("add_bias");
}

template <class T>
void bias_backward_impl(const T* dy, int64_t rows, int64_t cols, float* dbias, void* scratch, cudaStream_t stream) {
  MF_CHECK(rows >= 0 && cols > 0, "bias_backward: bad shape ", rows, " x ", cols);
  if (rows == 0) return;
  const int64_t chunks = chunks_for(rows), per = (rows + chunks - 1) / chunks;
  // Every chunk below `chunks` gets rows, except possibly trailing ones that write zeros.
  float* partial = static_cast<float*>(scratch);
  column_partials_kernel<<<unsigned(chunks), kThreads, 0, stream>>>(dy, rows, cols, per, partial);
  check_launch("bias_backward (partials)");
  column_total_kernel<<<blocks_for(cols, kThreads), kThreads, 0, stream>>>(partial, chunks, cols, dbias);
  check_launch("bias_backward (total)");
}

}  // namespace

void add_bias(bf16* y, const float* bias, int64_t rows, int64_t cols, cudaStream_t stream) {
  add_bias_impl(y, bias, rows, cols, stream);
}
void add_bias(float* y, const float* bias, int64_t rows, int64_t cols, cudaStream_t stream) {
  add_bias_impl(y, bias, rows, cols, stream);
}

size_t bias_backward_scratch_bytes(int64_t rows, int64_t cols) {
  return size_t(chunks_for(rows)) * size_t(std::max<int64_t>(cols, 1)) * sizeof(float);
}
void bias_backward(const bf16* dy, int64_t rows, int64_t cols, float* dbias, void* scratch, cudaStream_t stream) {
  bias_backward_impl(dy, rows, cols, dbias, scratch, stream);
}
void bias_backward(const float* dy, int64_t rows, int64_t cols, float* dbias, void* scratch, cudaStream_t stream) {
  bias_backward_impl(dy, rows, cols, dbias, scratch, stream);
}

}  // namespace mf::cuda

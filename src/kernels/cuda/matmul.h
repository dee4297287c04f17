// GEMMs on the GPU through cuBLAS: bf16 inputs, fp32 accumulation (CUBLAS_COMPUTE_32F), output
// bf16 or fp32. Row-major throughout, as the rest of moeforge; the column-major translation
// lives in matmul.cu only. The experts of a MoE layer run as one grouped GEMM over their
// per-expert row counts (cublasGemmGroupedBatchedEx). Where cuBLAS turns a grouped type
// combination down (bf16 inputs with an fp32 output, i.e. the expert weight gradients, may be
// one), that call falls back to one GEMM per expert.
#pragma once
#include <cstdint>
#include <span>

#include "kernels/cuda/device.h"

struct cublasContext;

namespace mf::cuda {

enum class OutType { bf16, f32 };

// A cuBLAS handle bound to one stream with its own workspace, reserved at construction so that
// no GEMM allocates inside a step loop.
class Blas {
 public:
  explicit Blas(cudaStream_t stream, size_t workspace_bytes = size_t(32) << 20);
  ~Blas();
  Blas(Blas&&) noexcept;
  Blas& operator=(Blas&&) noexcept;
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;
  cublasContext* handle() const { return handle_; }
  cudaStream_t stream() const { return stream_; }

 private:
  cublasContext* handle_ = nullptr;
  cudaStream_t stream_ = nullptr;
  DeviceBuffer workspace_;
};

// C[M,N] = alpha * op(A) op(B) + beta * C, row-major. op(A) is [M,K]: A is [M,K], or [K,M] when
// trans_a. op(B) is [K,N]: B is [K,N], or [N,K] when trans_b. `c_type` says what C holds.
void gemm(Blas& blas, const bf16* a, bool trans_a, const bf16* b, bool trans_b, void* c, OutType c_type, int64_t m,
          int64_t n, int64_t k, float alpha = 1.0f, float beta = 0.0f, const char* op = "gemm");

// A linear layer y = x W^T (W in HF layout [out, in]) and its two backward GEMMs.
// y[M,N] (= beta * y +) x[M,K] W[N,K]^T; beta = 1 adds into y (e.g. the fp32 residual stream).
void linear_forward(Blas& blas, const bf16* x, const bf16* w, void* y, OutType y_type, int64_t m, int64_t n,
                    int64_t k, float beta = 0.0f);
// dx[M,K] (= beta * dx +) dy[M,N] W[N,K]
void linear_backward_input(Blas& blas, const bf16* dy, const bf16* w, void* dx, OutType dx_type, int64_t m, int64_t n,
                           int64_t k, float beta = 0.0f);
// dW[N,K] += dy[M,N]^T x[M,K] in fp32 (gradients accumulate over micro-batches)
void linear_backward_weight(Blas& blas, const bf16* dy, const bf16* x, float* dw, int64_t m, int64_t n, int64_t k);

// The experts of one MoE layer. Rows of x are grouped by expert: expert e owns rows
// [offsets[e], offsets[e+1]) (host copy of the dispatch plan's offsets). weights[e] points at
// expert e's matrix [N, K] (device). Experts with no rows are left out of the call.
struct ExpertGroups {
  std::span<const int32_t> offsets;        // host, E + 1 entries
  std::span<const bf16* const> weights;    // host array of E device pointers, each [N, K]
};
// Device scratch the grouped calls need for their pointer arrays (3 * E pointers).
size_t grouped_pointer_bytes(int experts);

// y_e = x_e W_e^T for every expert in one grouped GEMM: x [R,K], y [R,N].
void grouped_linear_forward(Blas& blas, const ExpertGroups& groups, const bf16* x, void* y, OutType y_type, int64_t n,
                            int64_t k, void* pointer_scratch, float beta = 0.0f);
// dx_e = dy_e W_e: dy [R,N], dx [R,K].
void grouped_linear_backward_input(Blas& blas, const ExpertGroups& groups, const bf16* dy, void* dx, OutType dx_type,
                                   int64_t n, int64_t k, void* pointer_scratch, float beta = 0.0f);
// dW_e += dy_e^T x_e in fp32; dweights[e] points at expert e's fp32 gradient [N, K].
void grouped_linear_backward_weight(Blas& blas, const ExpertGroups& groups, std::span<float* const> dweights,
                                    const bf16* dy, const bf16* x, int64_t n, int64_t k, void* pointer_scratch);

}  // namespace mf::cuda

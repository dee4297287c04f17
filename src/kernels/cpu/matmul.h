// Linear layers and plain fp32 GEMM.
#pragma once
#include <cstdint>
#include <climits>
#include <memory>
#include <mutex>
#include <span>

#include "core/tensor.h"
#include "kernels/cpu/packed_on_demand.h"
#include "kernels/cpu/packed_quant.h"

namespace mf {

// y[M,N] = x[M,K] . W^T (+ bias[N] if non-null). W is a 2-D tensor [N, K] of F32, F16, BF16,
// Q8_0, Q4_0, Q4_1 (AVX-512 kernels that dequantize on the fly) or any other format that
// quant.h's dequantize_row knows (Q5_0/Q5_1/K-quants: row dequantized to fp32, then dotted).
// Small M (decode, M <= 8): per-format GEMV parallel over output rows. Large M (prefill):
// fp32 panels of W + oneDNN sgemm. With QuantDot::exact (the default) activations are never
// quantized: the result equals x . dequantize(W)^T up to fp32 summation order (~1e-5 relative).
// Throws mf::Error if W is not [N, K] or K is not a multiple of the format's block size.
void linear(const float* x, int64_t M, int64_t K, const Tensor& weight, const float* bias, float* y);

// Backward of linear with respect to its input: dx[M, K] = dy[M, N] . W, for W of any format
// linear() takes (a frozen quantized weight still passes gradients through). accumulate:
// dx += instead of dx =. Quantized weights are dequantized a panel of rows at a time.
void linear_backward_input(const float* dy, int64_t M, int64_t N, const Tensor& weight, float* dx, bool accumulate);

// Backward of linear with respect to its parameters (fp32 weights being trained):
// dweight[N, K] += dy[M, N]^T . x[M, K], and dbias[N] += column sums of dy if dbias is non-null.
void linear_backward_weight(const float* dy, const float* x, int64_t M, int64_t N, int64_t K, float* dweight,
                            float* dbias);

// A linear layer's weight as a model holds it: the stored tensor and, optionally, a copy
// packed for decode, made at load (`packed`) or when first needed (`packed_on_demand`: a MoE's
// routed experts, under the model's budget for such copies).
// Implicitly made from a Tensor.
struct LinearWeight {
  Tensor w;
  std::shared_ptr<const PackedQuantMatrix> packed;  // null: row-major kernels only
  std::shared_ptr<PackedOnDemand> packed_on_demand;
  DecodeActivations activations = DecodeActivations::fp32;

  LinearWeight() = default;
  LinearWeight(Tensor t) : w(std::move(t)) {}  // NOLINT(google-explicit-constructor): a weight is a tensor
  int64_t dim(int i) const { return w.dim(i); }
  DType dtype() const { return w.dtype(); }
};

// As above; M <= 8 with a packed copy runs on it (gemv_f32 or gemv_int8 as `activations`
// says), anything else on the stored tensor.
void linear(const float* x, int64_t M, int64_t K, const LinearWeight& weight, const float* bias, float* y);

// One linear of a linear_many call: y[M, N] = x[M, K] . W^T (+ bias).
struct LinearJob {
  const float* x;
  int64_t M, K;
  const LinearWeight* weight;
  const float* bias;  // may be null
  float* y;
};

// Several independent linears as if each went through linear(), with the same results bit for
// bit. The ones that take the packed decode path (a layer's q/k/v, its gate/up, the experts a
// step routes to) run as one parallel loop: one wake-up and one wait for all of them instead of
// one each, and jobs over the same x share its preparation (Q4_1 sums, int8 quantization).
void linear_many(std::span<const LinearJob> jobs);

// Plain fp32 GEMM, row-major: C = alpha * op(A) * op(B) + beta * C, op(A) is [M,K],
// op(B) is [K,N]. Cuts C into tiles fixed by the shape and runs oneDNN's sgemm on each, one
// thread per tile, on the work pool (oneDNN picks its kernels from the CPU's feature flags, so an
// unknown CPU model still gets AVX-512 code): the result does not depend on the thread count.
void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
              int64_t ldc);

// y = x . W^T (+ bias) with every row's result independent of M (the GEMV path, kLinearGemvMaxRows
// rows per call): for the small matrices whose output decides something discrete (a MoE router's
// top-k), so a token routes the same alone or in a batch of any size.
void linear_rowwise(const float* x, int64_t M, int64_t K, const Tensor& weight, const float* bias, float* y);

// Largest M that takes the GEMV path (exposed so tests can cover both paths).
constexpr int64_t kLinearGemvMaxRows = 8;
// Largest M that a weight with a decode-packed copy runs through the packed kernels instead of
// dequantizing panels for a GEMM: a server's batched decode step (up to --parallel rows) and
// short prompt chunks read the packed weights once, and every row gets the same result whatever
// the batch (so batching stays exact). With fp32 activations the packed kernel beats the
// dequantize+GEMM path up to ~64-128 rows (bench_linear); with int8 activations (VNNI, opt-in)
// it is 2.5-5x faster at every size, so int8 runs any M on it, kMaxRows rows per call.
constexpr int64_t kLinearPackedMaxRows = 64;
constexpr int64_t kLinearPackedInt8MaxRows = INT64_MAX;

}  // namespace mf

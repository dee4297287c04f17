// The GEMMs go to cuBLAS, which is column-major: each row-major product is issued as its
// transpose, C^T = op(B)^T op(A)^T, so no matrix is copied or transposed in memory. Grouped calls
// copy their per-expert pointer arrays to device scratch on the same stream just before the call.
#include <cublas_v2.h>

#include <utility>
#include <vector>

#include "core/error.h"
#include "kernels/cuda/matmul.h"

namespace mf::cuda {

namespace {

void check_blas(cublasStatus_t status, const char* op) {
  if (status != CUBLAS_STATUS_SUCCESS) fail(op, ": cuBLAS error ", cublasGetStatusString(status));
}

cudaDataType_t data_type(OutType t) { return t == OutType::bf16 ? CUDA_R_16BF : CUDA_R_32F; }
size_t element_bytes(OutType t) { return t == OutType::bf16 ? 2 : 4; }

int as_int(int64_t v, const char* what) {
  MF_CHECK(v >= 0 && v <= INT32_MAX, "GEMM dimension ", what, " = ", v, " is out of cuBLAS's int range");
  return int(v);
}

// One grouped call: each non-empty expert is a group of size 1 (its own m, n, k). The pointer
// arrays must live on the device; they are copied from the host right before the call on the
// same stream (cudaMemcpyAsync from pageable memory stages the data before it returns, so the
// host vectors may go out of scope).
struct GroupedCall {
  std::vector<cublasOperation_t> trans_a, trans_b;
  std::vector<int> m, n, k, lda, ldb, ldc, group_size;
  std::vector<float> alpha, beta;
  std::vector<const void*> a, b;
  std::vector<void*> c;

  void add(cublasOperation_t ta, cublasOperation_t tb, int64_t mm, int64_t nn, int64_t kk, const void* pa, int64_t la,
           const void* pb, int64_t lb, void* pc, int64_t lc, float al, float be) {
    trans_a.push_back(ta);
    trans_b.push_back(tb);
    m.push_back(as_int(mm, "m"));
    n.push_back(as_int(nn, "n"));
    k.push_back(as_int(kk, "k"));
    lda.push_back(as_int(la, "lda"));
    ldb.push_back(as_int(lb, "ldb"));
    ldc.push_back(as_int(lc, "ldc"));
    group_size.push_back(1);
    alpha.push_back(al);
    beta.push_back(be);
    a.push_back(pa);
    b.push_back(pb);
    c.push_back(pc);
  }

  void run(Blas& blas, cudaDataType_t ab_type, cudaDataType_t c_type, void* pointer_scratch, const char* op) {
    const int groups = int(m.size());
    if (groups == 0) return;
    // One grouped launch when cuBLAS takes this type combination. Its documented combinations
    // may not include bf16 x bf16 -> fp32 C (the weight gradients); a library or GPU that turns
    // the call down gets one cublasGemmEx per expert instead, with the same arguments (a
    // parameter error would then surface from those calls).
    void** device_pointers = static_cast<void**>(pointer_scratch);
    std::vector<const void*> all;
    all.reserve(3 * size_t(groups));
    all.insert(all.end(), a.begin(), a.end());
    all.insert(all.end(), b.begin(), b.end());
    all.insert(all.end(), c.begin(), c.end());
    check(cudaMemcpyAsync(device_pointers, all.data(), all.size() * sizeof(void*), cudaMemcpyHostToDevice,
                          blas.stream()),
          op);
    const cublasStatus_t status = cublasGemmGroupedBatchedEx(
        blas.handle(), trans_a.data(), trans_b.data(), m.data(), n.data(), k.data(), alpha.data(),
        const_cast<const void* const*>(device_pointers), ab_type, lda.data(),
        const_cast<const void* const*>(device_pointers + groups), ab_type, ldb.data(), beta.data(),
        device_pointers + 2 * groups, c_type, ldc.data(), groups, group_size.data(), CUBLAS_COMPUTE_32F);
    if (status != CUBLAS_STATUS_NOT_SUPPORTED && status != CUBLAS_STATUS_INVALID_VALUE) {
      check_blas(status, op);
      return;
    }
    for (int g = 0; g < groups; ++g)
      check_blas(cublasGemmEx(blas.handle(), trans_a[size_t(g)], trans_b[size_t(g)], m[size_t(g)], n[size_t(g)],
                              k[size_t(g)], &alpha[size_t(g)], a[size_t(g)], ab_type, lda[size_t(g)], b[size_t(g)],
                              ab_type, ldb[size_t(g)], &beta[size_t(g)], c[size_t(g)], c_type, ldc[size_t(g)],
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 op);
  }
};

void check_groups(const ExpertGroups& groups) {
  MF_CHECK(groups.offsets.size() == groups.weights.size() + 1, "grouped GEMM: ", groups.offsets.size(),
           " offsets for ", groups.weights.size(), " experts");
  for (size_t e = 0; e + 1 < groups.offsets.size(); ++e)
    MF_CHECK(groups.offsets[e] <= groups.offsets[e + 1], "grouped GEMM: offsets decrease at expert ", e);
}

}  // namespace

Blas::Blas(cudaStream_t stream, size_t workspace_bytes) : stream_(stream), workspace_(workspace_bytes, "cuBLAS workspace") {
  cublasHandle_t handle = nullptr;
  check_blas(cublasCreate(&handle), "cublasCreate");
  handle_ = handle;
  check_blas(cublasSetStream(handle_, stream_), "cublasSetStream");
  check_blas(cublasSetWorkspace(handle_, workspace_.get(), workspace_.bytes()), "cublasSetWorkspace");
  // Pointer mode host: alpha/beta are host scalars (arrays for the grouped calls).
  check_blas(cublasSetPointerMode(handle_, CUBLAS_POINTER_MODE_HOST), "cublasSetPointerMode");
}

Blas::~Blas() {
  if (handle_) cublasDestroy(handle_);
}

Blas::Blas(Blas&& other) noexcept
    : handle_(std::exchange(other.handle_, nullptr)), stream_(other.stream_), workspace_(std::move(other.workspace_)) {}

Blas& Blas::operator=(Blas&& other) noexcept {
  if (this != &other) {
    if (handle_) cublasDestroy(handle_);
    handle_ = std::exchange(other.handle_, nullptr);
    stream_ = other.stream_;
    workspace_ = std::move(other.workspace_);
  }
  return *this;
}

// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T, and a row-major matrix read
// as column-major is its transpose: so B goes first, and each keeps its own transpose flag.
void gemm(Blas& blas, const bf16* a, bool trans_a, const bf16* b, bool trans_b, void* c, OutType c_type, int64_t m,
          int64_t n, int64_t k, float alpha, float beta, const char* op) {
  if (m == 0 || n == 0) return;
  const int64_t lda = trans_a ? m : k;  // row length of A as stored
  const int64_t ldb = trans_b ? k : n;
  check_blas(cublasGemmEx(blas.handle(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                          as_int(n, "n"), as_int(m, "m"), as_int(k, "k"), &alpha, b, CUDA_R_16BF, as_int(ldb, "ldb"), a,
                          CUDA_R_16BF, as_int(lda, "lda"), &beta, c, data_type(c_type), as_int(n, "ldc"),
                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
             op);
}

void linear_forward(Blas& blas, const bf16* x, const bf16* w, void* y, OutType y_type, int64_t m, int64_t n, int64_t k,
                    float beta) {
  gemm(blas, x, false, w, true, y, y_type, m, n, k, 1.0f, beta, "linear_forward");
}

void linear_backward_input(Blas& blas, const bf16* dy, const bf16* w, void* dx, OutType dx_type, int64_t m, int64_t n,
                           int64_t k, float beta) {
  gemm(blas, dy, false, w, false, dx, dx_type, m, k, n, 1.0f, beta, "linear_backward_input");
}

void linear_backward_weight(Blas& blas, const bf16* dy, const bf16* x, float* dw, int64_t m, int64_t n, int64_t k) {
  gemm(blas, dy, true, x, false, dw, OutType::f32, n, k, m, 1.0f, 1.0f, "linear_backward_weight");
}

size_t grouped_pointer_bytes(int experts) { return 3 * size_t(experts) * sizeof(void*); }

// Column-major forms per expert (x_e: rows_e x K row-major, W_e: N x K row-major):
//   forward    y_e^T (N x rows) = W_e^T' ... = op_T(W_e as K x N) * (x_e as K x rows)
//   input      dx_e^T (K x rows) = (W_e as K x N) * (dy_e as N x rows)
//   weight     dW_e^T (K x N) += (x_e as K x rows) * op_T(dy_e as N x rows)
void grouped_linear_forward(Blas& blas, const ExpertGroups& groups, const bf16* x, void* y, OutType y_type, int64_t n,
                            int64_t k, void* pointer_scratch, float beta) {
  check_groups(groups);
  GroupedCall call;
  for (size_t e = 0; e < groups.weights.size(); ++e) {
    const int64_t begin = groups.offsets[e], rows = groups.offsets[e + 1] - begin;
    if (rows == 0) continue;
    call.add(CUBLAS_OP_T, CUBLAS_OP_N, n, rows, k, groups.weights[e], k, x + begin * k, k,
             static_cast<char*>(y) + size_t(begin * n) * element_bytes(y_type), n, 1.0f, beta);
  }
  call.run(blas, CUDA_R_16BF, data_type(y_type), pointer_scratch, "grouped_linear_forward");
}

void grouped_linear_backward_input(Blas& blas, const ExpertGroups& groups, const bf16* dy, void* dx, OutType dx_type,
                                   int64_t n, int64_t k, void* pointer_scratch, float beta) {
  check_groups(groups);
  GroupedCall call;
  for (size_t e = 0; e < groups.weights.size(); ++e) {
    const int64_t begin = groups.offsets[e], rows = groups.offsets[e + 1] - begin;
    if (rows == 0) continue;
    call.add(CUBLAS_OP_N, CUBLAS_OP_N, k, rows, n, groups.weights[e], k, dy + begin * n, n,
             static_cast<char*>(dx) + size_t(begin * k) * element_bytes(dx_type), k, 1.0f, beta);
  }
  call.run(blas, CUDA_R_16BF, data_type(dx_type), pointer_scratch, "grouped_linear_backward_input");
}

void grouped_linear_backward_weight(Blas& blas, const ExpertGroups& groups, std::span<float* const> dweights,
                                    const bf16* dy, const bf16* x, int64_t n, int64_t k, void* pointer_scratch) {
  check_groups(groups);
  MF_CHECK(dweights.size() == groups.weights.size(), "grouped weight gradient: ", dweights.size(), " buffers for ",
           groups.weights.size(), " experts");
  GroupedCall call;
  for (size_t e = 0; e < groups.weights.size(); ++e) {
    const int64_t begin = groups.offsets[e], rows = groups.offsets[e + 1] - begin;
    if (rows == 0 || dweights[e] == nullptr) continue;
    call.add(CUBLAS_OP_N, CUBLAS_OP_T, k, n, rows, x + begin * k, k, dy + begin * n, n, dweights[e], k, 1.0f, 1.0f);
  }
  call.run(blas, CUDA_R_16BF, CUDA_R_32F, pointer_scratch, "grouped_linear_backward_weight");
}

}  // namespace mf::cuda

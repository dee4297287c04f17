// linear() picks its path by row count: M <= 8 runs the GEMV kernels (a weight with a decode-packed
// copy: M <= 64, or 256 with int8 activations, through the packed kernels); larger M
// dequantizes W a slice of rows per pool chunk, each multiplied by a single-threaded oneDNN sgemm
// on the same core, so a non-fp32 matrix is never expanded whole. linear_backward_input dequantizes
// in panels of ~2 MiB and multiplies them with gemm_f32 (tiles of C on the pool).
#include "kernels/cpu/matmul.h"

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "core/work_pool.h"
#include "kernels/cpu/gemv.h"
#include "kernels/cpu/row_decode.h"

namespace mf {

namespace {

// oneDNN's sgemm threads itself with OpenMP, as many threads as the calling thread's OpenMP setting
// allows. moeforge runs it on one thread per tile instead, on the work pool, for two reasons:
// an OpenMP team waits at its end for a thread the OS has descheduled (on a busy machine every
// GEMM then costs a time slice), and oneDNN splits the sum over K between threads for some shapes,
// so a result would depend on the thread count.
class SingleThreadedOpenMP {
 public:
  SingleThreadedOpenMP() : saved_(omp_get_max_threads()) {
    if (saved_ != 1) omp_set_num_threads(1);
  }
  ~SingleThreadedOpenMP() {
    if (saved_ != 1) omp_set_num_threads(saved_);
  }
  SingleThreadedOpenMP(const SingleThreadedOpenMP&) = delete;
  SingleThreadedOpenMP& operator=(const SingleThreadedOpenMP&) = delete;

 private:
  int saved_;
};

// One sgemm on the calling thread (a pool chunk), row-major as gemm_f32.
void sgemm_on_this_thread(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const SingleThreadedOpenMP one_thread;
  const dnnl_status_t st =
      dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  MF_CHECK(st == dnnl_success, "oneDNN sgemm failed (status ", int(st), ") for M=", M, " N=", N, " K=", K);
}

// The tiles of C a gemm_f32 is cut into, one single-threaded sgemm each. They depend on the shape
// alone (never on the thread count or the load), and K is never cut, so every element of C is
// summed in the same order on any machine. The longer side is halved until there are 8 tiles,
// as long as a tile keeps at least 64 rows or columns and 2^19 multiply-adds (smaller ones lose
// more to packing than they gain: a 64 x 64 tile runs ~15% below a 128 x 128 one); no side is
// over 512.
struct GemmTiles {
  int64_t rows, cols;
};

int64_t halve(int64_t n) { return (n / 2 + 15) / 16 * 16; }

GemmTiles gemm_tiles(int64_t M, int64_t N, int64_t K) {
  constexpr int64_t kTargetTiles = 8, kMinSide = 64, kMinProducts = int64_t(1) << 19, kMaxSide = 512;
  GemmTiles t{M, N};
  auto count = [&] { return ((M + t.rows - 1) / t.rows) * ((N + t.cols - 1) / t.cols); };
  while (count() < kTargetTiles) {
    int64_t& side = t.rows >= t.cols ? t.rows : t.cols;
    const int64_t other = t.rows >= t.cols ? t.cols : t.rows;
    const int64_t half = halve(side);
    if (half < kMinSide || half * other * K < kMinProducts) break;
    side = half;
  }
  while (t.rows > kMaxSide) t.rows = halve(t.rows);
  while (t.cols > kMaxSide) t.cols = halve(t.cols);
  return t;
}

void check_weight(const Tensor& weight, int64_t M, int64_t K) {
  MF_CHECK(weight.ndim() == 2, "linear: weight must be 2-D [N, K], got shape ",
           shape_str(weight.shape()));
  MF_CHECK(weight.dim(1) == K, "linear: weight ", shape_str(weight.shape()), " (",
           dtype_name(weight.dtype()), ") does not match input width K=", K);
  MF_CHECK(M >= 0, "linear: negative row count M=", M);
  const int block = dtype_info(weight.dtype()).block_elems;
  MF_CHECK(K % block == 0, "linear: K=", K, " is not a multiple of the ",
           dtype_name(weight.dtype()), " block size ", block);
  switch (weight.dtype()) {
    case DType::F64: case DType::I8: case DType::I16: case DType::I32: case DType::I64:
    case DType::U8: case DType::BOOL: case DType::Q8_K:
      fail("linear: weight format ", dtype_name(weight.dtype()), " is not a matmul weight type");
    default: break;
  }
  MF_CHECK(weight.numel() == 0 || weight.raw() != nullptr, "linear: weight has no data");
}

void add_bias(const float* bias, int64_t M, int64_t N, float* y) {
  for (int64_t r = 0; r < M; ++r)
#pragma omp simd
    for (int64_t n = 0; n < N; ++n) y[r * N + n] += bias[n];
}

// Dequantizes `rows` consecutive rows of a quantized matrix into fp32 [rows, K], on the pool.
void decode_rows(DType t, const uint8_t* w, size_t row_bytes, int64_t rows, int64_t K, float* out) {
  parallel_ranges(rows, std::max<int64_t>(1, 16384 / K), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) detail::decode_row(t, w + size_t(r) * row_bytes, out + r * K, K);
  });
}

// Prefill path: each chunk of the pool dequantizes a slice of W's rows into fp32 on its own thread
// and multiplies all of x by it with a single-threaded sgemm while the slice is in that core's
// cache (a panel dequantized by one thread and multiplied by another crosses cores). About 8
// slices per matrix so that two or more threads share the work evenly, each at most ~512 KB of
// fp32. The slices depend on the shape alone.
void linear_panels(const float* x, int64_t M, int64_t K, const Tensor& weight, float* y) {
  const int64_t N = weight.dim(0);
  const DType t = weight.dtype();
  if (t == DType::F32) {
    gemm_f32(false, true, M, N, K, 1.0f, x, K, weight.data<float>(), K, 0.0f, y, N);
    return;
  }
  const int64_t most_rows = std::max<int64_t>(16, (int64_t(1) << 17) / K / 16 * 16);
  const int64_t slice_rows = std::min({most_rows, std::max<int64_t>(16, ((N + 7) / 8 + 15) / 16 * 16), N});
  const size_t row_bytes = dtype_bytes(t, K);
  const auto* w = static_cast<const uint8_t*>(weight.raw());
  auto slice = [&](int64_t c, int) {
    const int64_t n0 = c * slice_rows, rows = std::min(slice_rows, N - n0);
    thread_local std::vector<float> panel;  // this thread's slice, reused across calls
    if (panel.size() < size_t(rows * K)) panel.resize(size_t(rows * K));
    for (int64_t r = 0; r < rows; ++r) detail::decode_row(t, w + size_t(n0 + r) * row_bytes, panel.data() + r * K, K);
    sgemm_on_this_thread(false, true, M, rows, K, 1.0f, x, K, panel.data(), K, 0.0f, y + n0, N);
  };
  parallel_chunks((N + slice_rows - 1) / slice_rows, slice);
}

}  // namespace

void linear(const float* x, int64_t M, int64_t K, const Tensor& weight, const float* bias,
            float* y) {
  check_weight(weight, M, K);
  const int64_t N = weight.dim(0);
  if (M == 0 || N == 0) return;
  MF_CHECK(x != nullptr && y != nullptr, "linear: null input or output");
  if (K == 0) {
    std::fill(y, y + M * N, 0.0f);
  } else if (M <= kLinearGemvMaxRows) {
    detail::gemv_rows(x, M, K, weight.dtype(), weight.raw(), N, y);
  } else {
    linear_panels(x, M, K, weight, y);
  }
  if (bias) add_bias(bias, M, N, y);
}

void linear_rowwise(const float* x, int64_t M, int64_t K, const Tensor& weight, const float* bias, float* y) {
  const int64_t N = weight.dim(0);
  for (int64_t r0 = 0; r0 < M; r0 += kLinearGemvMaxRows)
    linear(x + r0 * K, std::min(kLinearGemvMaxRows, M - r0), K, weight, bias, y + r0 * N);
}

namespace {

// The packed copy M rows multiply, or null when this call takes the stored tensor. The caller
// holds it until it is done: an on-demand copy may be dropped under the budget meanwhile.
std::shared_ptr<const PackedQuantMatrix> packed_for(const LinearWeight& weight, int64_t M, int64_t K) {
  const int64_t packed_rows =
      weight.activations == DecodeActivations::int8 ? kLinearPackedInt8MaxRows : kLinearPackedMaxRows;
  if (!(weight.packed || weight.packed_on_demand) || M < 1 || M > packed_rows) return nullptr;
  std::shared_ptr<const PackedQuantMatrix> packed =
      weight.packed ? weight.packed : weight.packed_on_demand->get(weight.w);
  MF_CHECK(packed->cols() == K && packed->rows() == weight.w.dim(0), "linear: packed weight [", packed->rows(), ", ",
           packed->cols(), "] does not match input width K=", K);
  return packed;
}

}  // namespace

void linear(const float* x, int64_t M, int64_t K, const LinearWeight& weight, const float* bias, float* y) {
  if (const std::shared_ptr<const PackedQuantMatrix> packed = packed_for(weight, M, K)) {
    const int64_t N = packed->rows();
    // int8 activations: slices of the kernel's most rows (each row's result is its own).
    for (int64_t r0 = 0; r0 < M; r0 += PackedQuantMatrix::kMaxRows) {
      const int64_t rows = std::min(PackedQuantMatrix::kMaxRows, M - r0);
      if (weight.activations == DecodeActivations::int8)
        packed->gemv_int8(x + r0 * K, rows, y + r0 * N);
      else
        packed->gemv_f32(x + r0 * K, rows, y + r0 * N);
    }
    if (bias) add_bias(bias, M, N, y);
    return;
  }
  linear(x, M, K, weight.w, bias, y);
}

void linear_many(std::span<const LinearJob> jobs) {
  // One packed multiplication: a job, or a slice of at most kMaxRows of its rows.
  struct Packed {
    const float* x;
    int64_t M, K;
    float* y;
    const float* bias;
    const PackedQuantMatrix* matrix;
    const PackedActivations* input;
  };
  struct Chunk {
    int item;
    int64_t g0, g1;
  };
  // Reused across calls (per thread): no allocation in the decode loop once grown.
  thread_local std::vector<Packed> packed;
  thread_local std::vector<std::unique_ptr<PackedActivations>> inputs;
  thread_local std::vector<Chunk> chunks;
  thread_local std::vector<std::shared_ptr<const PackedQuantMatrix>> held;  // the copies in use
  packed.clear();
  chunks.clear();
  held.clear();
  size_t used_inputs = 0;
  for (const LinearJob& j : jobs) {
    MF_CHECK(j.weight != nullptr, "linear_many: a job has no weight");
    std::shared_ptr<const PackedQuantMatrix> copy = packed_for(*j.weight, j.M, j.K);
    if (!copy) {
      linear(j.x, j.M, j.K, *j.weight, j.bias, j.y);
      continue;
    }
    MF_CHECK(j.x != nullptr && j.y != nullptr, "linear_many: null input or output");
    const PackedQuantMatrix* m = copy.get();
    held.push_back(std::move(copy));
    const DecodeActivations kind = j.weight->activations;
    for (int64_t r0 = 0; r0 < j.M; r0 += PackedQuantMatrix::kMaxRows) {
      const Packed slice{j.x + r0 * j.K, std::min(PackedQuantMatrix::kMaxRows, j.M - r0), j.K, j.y + r0 * m->rows(),
                         j.bias, m, nullptr};
      const PackedActivations* input = nullptr;
      for (const Packed& p : packed)
        if (p.x == slice.x && p.M == slice.M && p.K == slice.K && p.input->kind() == kind) input = p.input;
      if (!input) {
        if (used_inputs == inputs.size()) inputs.push_back(std::make_unique<PackedActivations>());
        PackedActivations& a = *inputs[used_inputs++];
        a.prepare(slice.x, slice.M, slice.K, kind);
        input = &a;
      }
      const int64_t per = m->groups_per_chunk(slice.M);
      for (int64_t g0 = 0; g0 < m->groups(); g0 += per)
        chunks.push_back({int(packed.size()), g0, std::min(m->groups(), g0 + per)});
      packed.push_back(slice);
      packed.back().input = input;
    }
  }
  const Packed* items = packed.data();
  const Chunk* table = chunks.data();
  parallel_chunks(int64_t(chunks.size()), [&](int64_t c, int) {
    const Packed& p = items[table[c].item];
    p.matrix->multiply_groups(*p.input, table[c].g0, table[c].g1, p.y);
  });
  for (const Packed& p : packed)
    if (p.bias) add_bias(p.bias, p.M, p.matrix->rows(), p.y);
  held.clear();
}

void linear_backward_input(const float* dy, int64_t M, int64_t N, const Tensor& weight, float* dx, bool accumulate) {
  MF_CHECK(weight.ndim() == 2 && weight.dim(0) == N, "linear_backward_input: weight ", shape_str(weight.shape()),
           " does not have N=", N, " rows");
  const int64_t K = weight.dim(1);
  check_weight(weight, M, K);
  if (M == 0 || K == 0) return;
  if (N == 0) {
    if (!accumulate) std::fill(dx, dx + M * K, 0.0f);
    return;
  }
  const DType t = weight.dtype();
  if (t == DType::F32) {
    gemm_f32(false, false, M, K, N, 1.0f, dy, N, weight.data<float>(), K, accumulate ? 1.0f : 0.0f, dx, K);
    return;
  }
  // dx = sum over row panels p of dy[:, p] . W[p, :], each panel dequantized once.
  const int64_t panel_rows = std::clamp<int64_t>((int64_t(1) << 19) / K / 16 * 16, 16, N);
  thread_local std::vector<float> panel;
  if (panel.size() < size_t(panel_rows * K)) panel.resize(size_t(panel_rows * K));
  float* p = panel.data();  // this thread's buffer, read by the GEMM's threads through the pointer
  const size_t row_bytes = dtype_bytes(t, K);
  const auto* w = static_cast<const uint8_t*>(weight.raw());
  for (int64_t n0 = 0; n0 < N; n0 += panel_rows) {
    const int64_t rows = std::min(panel_rows, N - n0);
    decode_rows(t, w + size_t(n0) * row_bytes, row_bytes, rows, K, p);
    const float beta = (accumulate || n0 > 0) ? 1.0f : 0.0f;
    gemm_f32(false, false, M, K, rows, 1.0f, dy + n0, N, p, K, beta, dx, K);
  }
}

void linear_backward_weight(const float* dy, const float* x, int64_t M, int64_t N, int64_t K, float* dweight,
                            float* dbias) {
  MF_CHECK(M >= 0 && N >= 0 && K >= 0, "linear_backward_weight: negative size M=", M, " N=", N, " K=", K);
  if (M == 0) return;
  gemm_f32(true, false, N, K, M, 1.0f, dy, N, x, K, 1.0f, dweight, K);
  if (dbias)
    for (int64_t r = 0; r < M; ++r)
#pragma omp simd
      for (int64_t n = 0; n < N; ++n) dbias[n] += dy[r * N + n];
}

void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
              int64_t ldc) {
  MF_CHECK(M >= 0 && N >= 0 && K >= 0, "gemm_f32: negative size M=", M, " N=", N, " K=", K);
  // Row-major: A is stored [M,K] (or [K,M] if transposed), B [K,N] (or [N,K]), C [M,N].
  MF_CHECK(lda >= std::max<int64_t>(1, trans_a ? M : K), "gemm_f32: lda=", lda, " too small");
  MF_CHECK(ldb >= std::max<int64_t>(1, trans_b ? K : N), "gemm_f32: ldb=", ldb, " too small");
  MF_CHECK(ldc >= std::max<int64_t>(1, N), "gemm_f32: ldc=", ldc, " too small");
  if (M == 0 || N == 0) return;
  const GemmTiles tiles = gemm_tiles(M, N, K);
  const int64_t tiles_m = (M + tiles.rows - 1) / tiles.rows, tiles_n = (N + tiles.cols - 1) / tiles.cols;
  auto tile = [&](int64_t t, int) {
    const int64_t m0 = (t / tiles_n) * tiles.rows, n0 = (t % tiles_n) * tiles.cols;
    const int64_t m = std::min(tiles.rows, M - m0), n = std::min(tiles.cols, N - n0);
    const float* a = A + (trans_a ? m0 : m0 * lda);
    const float* b = B + (trans_b ? n0 * ldb : n0);
    sgemm_on_this_thread(trans_a, trans_b, m, n, K, alpha, a, lda, b, ldb, beta, C + m0 * ldc + n0, ldc);
  };
  parallel_chunks(tiles_m * tiles_n, tile);
}

}  // namespace mf

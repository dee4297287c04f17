// RMSNorm kernels: one block per row, sized to it (a multiple of 32, up to 1024 threads), with
// 16-byte accesses when dim and alignment allow. Each backward block accumulates its dweight row in
// shared memory up to 8192 columns, else in the caller's scratch; rows are summed in a fixed order.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "core/error.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/norm.h"

namespace mf::cuda {

namespace {

// V consecutive elements moved with one load/store (16 bytes of fp32 for V = 4).
// Threads for one row of `vectors` packs: a multiple of 32 in [32, 1024].
int row_threads(int64_t vectors) {
  const int64_t t = (vectors + 31) / 32 * 32;
  return int(std::clamp<int64_t>(t, 32, 1024));
}

// Rows are visited grid-stride, so any row count fits in the grid.
unsigned row_blocks(int64_t rows, int64_t cap = int64_t(1) << 20) { return unsigned(std::min(rows, cap)); }

constexpr int kVec = 4;                // fp32 elements per 16-byte access
constexpr int64_t kMaxPartials = 512;  // blocks (= dweight partial rows) of rmsnorm_backward
constexpr int64_t kSharedAccMax = 8192;  // dims whose dweight partial row lives in shared memory

// One block per row (grid-stride). kAdd: residual += delta first (written back by the thread
// that later reads the same elements again, so no barrier is needed between the passes).
template <int V, bool kAdd, class OutT>
__global__ void rmsnorm_kernel(std::conditional_t<kAdd, float*, const float*> x, const bf16* delta,
                               const float* weight, int64_t rows, int64_t dim, float eps, OutT* y, float* rstd) {
  __shared__ float red[32];
  const int64_t vectors = dim / V;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t base = row * dim;
    float ss = 0.f;
    for (int64_t j = threadIdx.x; j < vectors; j += blockDim.x) {
      Pack<float, V> a = load_pack<V>(x + base + j * V);
      if constexpr (kAdd) {
        const Pack<bf16, V> d = load_pack<V>(delta + base + j * V);
#pragma unroll
        for (int k = 0; k < V; ++k) a.v[k] += __bfloat162float(d.v[k]);
        store_pack<V>(x + base + j * V, a);
      }
#pragma unroll
      for (int k = 0; k < V; ++k) ss += a.v[k] * a.v[k];
    }
    ss = block_sum(ss, red);
    const float inv = 1.0f / sqrtf(ss / float(dim) + eps);
    if (rstd != nullptr && threadIdx.x == 0) rstd[row] = inv;
    for (int64_t j = threadIdx.x; j < vectors; j += blockDim.x) {
      const Pack<float, V> a = load_pack<V>(x + base + j * V);
      const Pack<float, V> w = load_pack<V>(weight + j * V);
      Pack<OutT, V> out;
#pragma unroll
      for (int k = 0; k < V; ++k) out.v[k] = from_float<OutT>(w.v[k] * (a.v[k] * inv));
      store_pack<V>(y + base + j * V, out);
    }
  }
}

template <bool kAdd, class OutT>
void launch_rmsnorm(std::conditional_t<kAdd, float*, const float*> x, const bf16* delta, const float* weight,
                    int64_t rows, int64_t dim, float eps, OutT* y, float* rstd, cudaStream_t stream, const char* op) {
  MF_CHECK(rows >= 0 && dim > 0, op, ": bad shape [", rows, ", ", dim, "]");
  if (rows == 0) return;
  const bool vec = dim % kVec == 0 && aligned(x, 16) && aligned(weight, 16) && aligned(y, sizeof(OutT) * kVec) &&
                   (!kAdd || aligned(delta, sizeof(bf16) * kVec));
  if (vec) {
    rmsnorm_kernel<kVec, kAdd, OutT>
        <<<row_blocks(rows), row_threads(dim / kVec), 0, stream>>>(x, delta, weight, rows, dim, eps, y, rstd);
  } else {
    rmsnorm_kernel<1, kAdd, OutT>
        <<<row_blocks(rows), row_threads(dim), 0, stream>>>(x, delta, weight, rows, dim, eps, y, rstd);
  }
  check_launch(op);
}

// Block b handles rows b, b + gridDim.x, ... in order. Per row: g.x reduced over the block, then
// dx += r*w*dy - k*x; the row's dweight term dy*x*r is added to the block's partial row `acc`
// (shared memory, or the block's row of `partials` for wide dims). Every acc element is read
// and written by one thread only, with the same indexing in every loop, so acc needs no barrier.
template <int V>
__global__ void rmsnorm_backward_kernel(const bf16* dy, const float* x, const float* weight, const float* rstd,
                                        int64_t rows, int64_t dim, float* dx, float* partials, bool shared_acc) {
  extern __shared__ __align__(16) float shared_acc_row[];
  __shared__ float red[32];
  const int64_t vectors = dim / V;
  float* acc = partials == nullptr ? nullptr : shared_acc ? shared_acc_row : partials + int64_t(blockIdx.x) * dim;
  if (acc != nullptr)
    for (int64_t j = threadIdx.x; j < vectors; j += blockDim.x) store_pack<V>(acc + j * V, Pack<float, V>{});
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t base = row * dim;
    const float r = rstd[row];
    float gx = 0.f;
    for (int64_t j = threadIdx.x; j < vectors; j += blockDim.x) {
      const Pack<bf16, V> d = load_pack<V>(dy + base + j * V);
      const Pack<float, V> a = load_pack<V>(x + base + j * V);
      const Pack<float, V> w = load_pack<V>(weight + j * V);
#pragma unroll
      for (int k = 0; k < V; ++k) gx += w.v[k] * __bfloat162float(d.v[k]) * a.v[k];
    }
    gx = block_sum(gx, red);
    const float kx = r * r * r * gx / float(dim);
    for (int64_t j = threadIdx.x; j < vectors; j += blockDim.x) {
      const Pack<bf16, V> d = load_pack<V>(dy + base + j * V);
      const Pack<float, V> a = load_pack<V>(x + base + j * V);
      const Pack<float, V> w = load_pack<V>(weight + j * V);
      Pack<float, V> g = load_pack<V>(dx + base + j * V);
#pragma unroll
      for (int k = 0; k < V; ++k) g.v[k] += r * w.v[k] * __bfloat162float(d.v[k]) - kx * a.v[k];
      store_pack<V>(dx + base + j * V, g);
      if (acc != nullptr) {
        Pack<float, V> s = load_pack<V>(acc + j * V);
#pragma unroll
        for (int k = 0; k < V; ++k) s.v[k] += __bfloat162float(d.v[k]) * a.v[k] * r;
        store_pack<V>(acc + j * V, s);
      }
    }
  }
  if (acc != nullptr && shared_acc)
    for (int64_t j = threadIdx.x; j < vectors; j += blockDim.x)
      store_pack<V>(partials + int64_t(blockIdx.x) * dim + j * V, load_pack<V>(acc + j * V));
}

// dweight[c] += sum over p of partials[p][c], p ascending. Block (32, kLanes): x picks the column,
// lane y sums partials y, y + kLanes, ... in order; the kLanes sums are then added in lane order.
constexpr int kLanes = 16;
__global__ void column_sum_kernel(const float* partials, int64_t parts, int64_t dim, float* dweight) {
  __shared__ float lane_sum[kLanes][33];
  for (int64_t c0 = int64_t(blockIdx.x) * 32; c0 < dim; c0 += int64_t(gridDim.x) * 32) {
    const int64_t c = c0 + threadIdx.x;
    float s = 0.f;
    if (c < dim)
      for (int64_t p = threadIdx.y; p < parts; p += kLanes) s += partials[p * dim + c];
    lane_sum[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && c < dim) {
      float total = 0.f;
      for (int l = 0; l < kLanes; ++l) total += lane_sum[l][threadIdx.x];
      dweight[c] += total;
    }
    __syncthreads();
  }
}

}  // namespace

void rmsnorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, bf16* y, float* rstd,
             cudaStream_t stream) {
  launch_rmsnorm<false>(x, nullptr, weight, rows, dim, eps, y, rstd, stream, "rmsnorm");
}

void rmsnorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, float* y, float* rstd,
             cudaStream_t stream) {
  launch_rmsnorm<false>(x, nullptr, weight, rows, dim, eps, y, rstd, stream, "rmsnorm (fp32 out)");
}

void add_rmsnorm(float* residual, const bf16* delta, const float* weight, int64_t rows, int64_t dim, float eps,
                 bf16* y, float* rstd, cudaStream_t stream) {
  launch_rmsnorm<true>(residual, delta, weight, rows, dim, eps, y, rstd, stream, "add_rmsnorm");
}

void add_rmsnorm(float* residual, const bf16* delta, const float* weight, int64_t rows, int64_t dim, float eps,
                 float* y, float* rstd, cudaStream_t stream) {
  launch_rmsnorm<true>(residual, delta, weight, rows, dim, eps, y, rstd, stream, "add_rmsnorm (fp32 out)");
}

size_t rmsnorm_backward_scratch_bytes(int64_t rows, int64_t dim) {
  if (rows <= 0 || dim <= 0) return 0;
  return size_t(std::min(rows, kMaxPartials)) * size_t(dim) * sizeof(float);
}

void rmsnorm_backward(const bf16* dy, const float* x, const float* weight, const float* rstd, int64_t rows,
                      int64_t dim, float* dx, float* dweight, void* scratch, cudaStream_t stream) {
  MF_CHECK(rows >= 0 && dim > 0, "rmsnorm_backward: bad shape [", rows, ", ", dim, "]");
  if (rows == 0) return;
  MF_CHECK(rstd != nullptr, "rmsnorm_backward: the forward's rstd is required");
  MF_CHECK(dweight == nullptr || scratch != nullptr, "rmsnorm_backward: dweight needs ",
           rmsnorm_backward_scratch_bytes(rows, dim), " bytes of scratch");
  float* partials = dweight != nullptr ? static_cast<float*>(scratch) : nullptr;
  // With dweight the block count is fixed by rows alone (the partition decides the sum order).
  const unsigned blocks = dweight != nullptr ? unsigned(std::min(rows, kMaxPartials)) : row_blocks(rows);
  const bool shared_acc = partials != nullptr && dim <= kSharedAccMax;
  const size_t shared_bytes = shared_acc ? size_t(dim) * sizeof(float) : 0;
  const bool vec = dim % kVec == 0 && aligned(dy, sizeof(bf16) * kVec) && aligned(x, 16) && aligned(weight, 16) &&
                   aligned(dx, 16) && (partials == nullptr || aligned(partials, 16));
  if (vec) {
    rmsnorm_backward_kernel<kVec><<<blocks, row_threads(dim / kVec), shared_bytes, stream>>>(
        dy, x, weight, rstd, rows, dim, dx, partials, shared_acc);
  } else {
    rmsnorm_backward_kernel<1>
        <<<blocks, row_threads(dim), shared_bytes, stream>>>(dy, x, weight, rstd, rows, dim, dx, partials, shared_acc);
  }
  check_launch("rmsnorm_backward");
  if (dweight != nullptr) {
    const unsigned col_blocks = unsigned(std::min<int64_t>((dim + 31) / 32, 65535));
    column_sum_kernel<<<col_blocks, dim3(32, kLanes), 0, stream>>>(partials, int64_t(blocks), dim, dweight);
    check_launch("rmsnorm_backward (dweight reduce)");
  }
}

}  // namespace mf::cuda

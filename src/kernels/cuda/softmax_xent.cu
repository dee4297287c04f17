// Cross-entropy in two passes per row: an online (max, sum of exp) merged across lanes and warps,
// then the gradient written over the bf16 logits in place, so the logits need no second buffer.
// Merges avoid FMA contraction so that every lane ends with the same bits.
#include <algorithm>
#include <cfloat>
#include <cstdint>

#include "core/error.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/softmax_xent.h"

namespace mf::cuda {

namespace {

constexpr int kMaxThreads = 512;
constexpr int kVec = 8;  // bf16 per 16-byte access

// (m, s) with s = sum of exp(z - m): merge two partial states. Products rounded separately
// (no FMA contraction), so merge(a, b) == merge(b, a) bit for bit and every lane of a butterfly
// ends with the same value. -FLT_MAX (not -inf) marks an empty state: exp(-FLT_MAX - m) is 0 and
// no inf - inf can appear.
__device__ __forceinline__ void merge(float& m, float& s, float m2, float s2) {
  const float mm = fmaxf(m, m2);
  s = __fadd_rn(__fmul_rn(s, expf(m - mm)), __fmul_rn(s2, expf(m2 - mm)));
  m = mm;
}

__device__ __forceinline__ void warp_merge(float& m, float& s) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, offset);
    const float s2 = __shfl_xor_sync(0xffffffffu, s, offset);
    merge(m, s, m2, s2);
  }
}

// One block per row (grid-stride over rows; every branch below is uniform across the block).
template <int V>
__global__ void cross_entropy_kernel(bf16* logits, const int32_t* targets, int64_t rows, int64_t vocab,
                                     float grad_scale, float* row_loss) {
  __shared__ float warp_m[32], warp_s[32];
  __shared__ float row_m, row_s;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const int64_t vectors = vocab / V;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    bf16* z = logits + row * vocab;
    const int32_t target = targets[row];
    if (target < 0 || target >= vocab) {
      if (threadIdx.x == 0) row_loss[row] = target < 0 ? 0.0f : __int_as_float(0x7fc00000);  // NaN: bad target
      if (grad_scale != 0.0f)
        for (int64_t j = threadIdx.x; j < vectors; j += blockDim.x) {
          Pack<bf16, V> zero;
#pragma unroll
          for (int k = 0; k < V; ++k) zero.v[k] = __float2bfloat16_rn(0.0f);
          store_pack<V>(z + j * V, zero);
        }
      continue;
    }
    // The target logit is read before the barriers below; the gradient overwrites it after them.
    const float zt = threadIdx.x == 0 ? __bfloat162float(z[target]) : 0.0f;
    float m = -FLT_MAX, s = 0.0f;
    for (int64_t j = threadIdx.x; j < vectors; j += blockDim.x) {
      const Pack<bf16, V> p = load_pack<V>(z + j * V);
#pragma unroll
      for (int k = 0; k < V; ++k) {
        const float x = __bfloat162float(p.v[k]);
        if (x > m) {
          s = s * expf(m - x) + 1.0f;
          m = x;
        } else {
          s += expf(x - m);
        }
      }
    }
    warp_merge(m, s);
    if (lane == 0) {
      warp_m[warp] = m;
      warp_s[warp] = s;
    }
    __syncthreads();
    if (warp == 0) {
      m = lane < warps ? warp_m[lane] : -FLT_MAX;
      s = lane < warps ? warp_s[lane] : 0.0f;
      warp_merge(m, s);
      if (lane == 0) {
        row_m = m;
        row_s = s;
      }
    }
    __syncthreads();
    m = row_m;
    s = row_s;
    if (threadIdx.x == 0) row_loss[row] = logf(s) - (zt - m);
    if (grad_scale != 0.0f) {
      const float scale = grad_scale / s;
      for (int64_t j = threadIdx.x; j < vectors; j += blockDim.x) {
        const Pack<bf16, V> p = load_pack<V>(z + j * V);
        Pack<bf16, V> d;
#pragma unroll
        for (int k = 0; k < V; ++k) {
          float g = expf(__bfloat162float(p.v[k]) - m) * scale;
          if (j * V + k == target) g -= grad_scale;
          d.v[k] = __float2bfloat16_rn(g);
        }
        store_pack<V>(z + j * V, d);
      }
    }
  }
}

// One block, each thread summing rows threadIdx.x, + blockDim.x, ... in order, then a fixed
// butterfly: the same inputs always give the same bits.
constexpr int kSumThreads = 1024;
__global__ void sum_rows_kernel(const float* row_loss, const int32_t* targets, int64_t rows,
                                CrossEntropyTotals* totals) {
  __shared__ double warp_loss[32];
  __shared__ long long warp_count[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  double loss = 0;
  long long count = 0;
  for (int64_t i = threadIdx.x; i < rows; i += blockDim.x)
    if (targets[i] >= 0) {
      loss += double(row_loss[i]);
      ++count;
    }
  for (int offset = 16; offset > 0; offset >>= 1) {
    loss += __shfl_xor_sync(0xffffffffu, loss, offset);
    count += __shfl_xor_sync(0xffffffffu, count, offset);
  }
  if (lane == 0) {
    warp_loss[warp] = loss;
    warp_count[warp] = count;
  }
  __syncthreads();
  if (warp == 0) {
    loss = lane < warps ? warp_loss[lane] : 0.0;
    count = lane < warps ? warp_count[lane] : 0;
    for (int offset = 16; offset > 0; offset >>= 1) {
      loss += __shfl_xor_sync(0xffffffffu, loss, offset);
      count += __shfl_xor_sync(0xffffffffu, count, offset);
    }
    if (lane == 0) {
      totals->loss_sum += loss;
      totals->counted += int64_t(count);
    }
  }
}

}  // namespace

void cross_entropy_forward_backward(bf16* logits, const int32_t* targets, int64_t rows, int64_t vocab,
                                    float grad_scale, float* row_loss, cudaStream_t stream) {
  MF_CHECK(rows >= 0 && vocab > 0 && vocab <= INT32_MAX, "cross_entropy_forward_backward: bad shape [", rows, ", ",
           vocab, "]");
  if (rows == 0) return;
  const unsigned blocks = unsigned(std::min<int64_t>(rows, int64_t(1) << 20));
  auto threads_for = [](int64_t vectors) {
    return int(std::clamp<int64_t>((vectors + 31) / 32 * 32, 32, kMaxThreads));
  };
  if (vocab % kVec == 0 && aligned(logits, 16))
    cross_entropy_kernel<kVec><<<blocks, threads_for(vocab / kVec), 0, stream>>>(logits, targets, rows, vocab,
                                                                                 grad_scale, row_loss);
  else
    cross_entropy_kernel<1><<<blocks, threads_for(vocab), 0, stream>>>(logits, targets, rows, vocab, grad_scale,
                                                                       row_loss);
  check_launch("cross_entropy_forward_backward");
}

void sum_rows(const float* row_loss, const int32_t* targets, int64_t rows, CrossEntropyTotals* totals,
              cudaStream_t stream) {
  MF_CHECK(rows >= 0, "sum_rows: negative row count ", rows);
  if (rows == 0) return;
  sum_rows_kernel<<<1, kSumThreads, 0, stream>>>(row_loss, targets, rows, totals);
  check_launch("sum_rows");
}

}  // namespace mf::cuda

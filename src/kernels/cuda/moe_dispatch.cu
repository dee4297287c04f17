// The dispatch plan takes two launches of one block per expert (count and capacity cutoff, then
// placement), each scanning every assignment with block-wide prefix sums: no global atomics, so
// row numbers are deterministic. Row kernels run one block per token (or assignment).
#include "kernels/cuda/moe_dispatch.h"

#include <cuda_runtime.h>

#include <climits>
#include <cstdint>

#include "core/error.h"
#include "kernels/cuda/common.cuh"

namespace mf::cuda {

namespace {

constexpr unsigned kFull = 0xffffffffu;
constexpr int kMaxK = kDispatchMaxTopK;
constexpr int kPlanThreads = 512;  // one block per expert
constexpr int kRowThreads = 128;   // one block per token (or per assignment) over H

// Exclusive prefix sum of v over the block in thread order; `total` gets the block's sum.
// Every thread of the block must call it (it syncs, and syncs again before returning so `sh`,
// shared int[33], can be reused at once).
__device__ __forceinline__ int block_exclusive_scan(int v, int& total, int* sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  int incl = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int n = __shfl_up_sync(kFull, incl, o);
    if (lane >= o) incl += n;
  }
  if (lane == 31) sh[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    const int w = lane < warps ? sh[lane] : 0;
    int wi = w;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int n = __shfl_up_sync(kFull, wi, o);
      if (lane >= o) wi += n;
    }
    if (lane < warps) sh[lane] = wi - w;  // exclusive offset of warp `lane`
    if (lane == 31) sh[32] = wi;          // block total
  }
  __syncthreads();
  const int excl = sh[warp] + incl - v;
  total = sh[32];
  __syncthreads();
  return excl;
}

// Block e: kept rows of expert e, and under a binding capacity the slot-major key s * rows + t
// of the capacity-th assignment to e (its cutoff: an assignment (t, s) to e is kept iff its key
// is <= the cutoff; INT64_MAX when everything is kept).
__global__ void __launch_bounds__(kPlanThreads)
    plan_count_kernel(const int32_t* __restrict__ expert_index, int64_t rows, int k, int capacity,
                      int32_t* __restrict__ counts, int64_t* __restrict__ cutoff) {
  __shared__ int sh[33];
  __shared__ int64_t found;
  const int e = blockIdx.x;
  const int64_t A = rows * k;
  int c = 0;
  for (int64_t a = threadIdx.x; a < A; a += blockDim.x) c += expert_index[a] == e;
  int total = 0;
  block_exclusive_scan(c, total, sh);
  if (capacity <= 0 || total <= capacity) {  // uniform
    if (threadIdx.x == 0) {
      counts[e] = total;
      cutoff[e] = INT64_MAX;
    }
    return;
  }
  if (threadIdx.x == 0) found = INT64_MAX;  // ordered before any write by the scan's barriers
  int running = 0;                          // same value in every thread: loop bounds are uniform
  for (int s = 0; s < k && running < capacity; ++s)
    for (int64_t base = 0; base < rows && running < capacity; base += blockDim.x) {
      const int64_t t = base + threadIdx.x;
      const int flag = t < rows && expert_index[t * k + s] == e;
      int chunk = 0;
      const int excl = block_exclusive_scan(flag, chunk, sh);
      if (flag && running + excl == capacity - 1) found = int64_t(s) * rows + t;
      running += chunk;
    }
  __syncthreads();
  if (threadIdx.x == 0) {
    counts[e] = capacity;
    cutoff[e] = found;
  }
}

// Block e: its offset (sum of the counts before it), then its kept assignments in assignment
// order, numbered from the offset. Only block e writes row_of_slot of assignments to e; block 0
// also marks assignments to experts outside [0, E) as dropped.
__global__ void __launch_bounds__(kPlanThreads)
    plan_place_kernel(const int32_t* __restrict__ expert_index, int64_t rows, int k, int E,
                      const int32_t* __restrict__ counts, const int64_t* __restrict__ cutoff,
                      int32_t* __restrict__ offsets, int32_t* __restrict__ row_of_slot,
                      int32_t* __restrict__ slot_of_row) {
  __shared__ int sh[33];
  const int e = blockIdx.x;
  int part = 0;
  for (int i = threadIdx.x; i < e; i += blockDim.x) part += counts[i];
  int offset = 0;
  block_exclusive_scan(part, offset, sh);
  if (threadIdx.x == 0) {
    offsets[e] = offset;
    if (e == E - 1) offsets[E] = offset + counts[e];
  }
  const int64_t cut = cutoff[e];
  const int64_t A = rows * k;
  int running = 0;
  for (int64_t base = 0; base < A; base += blockDim.x) {
    const int64_t a = base + threadIdx.x;
    const int ex = a < A ? expert_index[a] : -1;
    const bool own = a < A && ex == e;
    bool keep = false;
    if (own) {
      const int64_t t = a / k, s = a - t * k;
      keep = s * rows + t <= cut;
    }
    const int kept_here = __syncthreads_count(keep);
    int excl = 0;
    if (kept_here > 0) {  // uniform
      int unused = 0;
      excl = block_exclusive_scan(keep, unused, sh);
    }
    if (own) {
      if (keep) {
        const int row = offset + running + excl;
        row_of_slot[a] = row;
        slot_of_row[row] = int32_t(a);
      } else {
        row_of_slot[a] = -1;
      }
    } else if (e == 0 && a < A && (ex < 0 || ex >= E)) {
      row_of_slot[a] = -1;
    }
    running += kept_here;
  }
}

// V consecutive elements: V == 8 moves 16 bytes of bf16 (32 of fp32) per access.
template <int V> __device__ __forceinline__ void load_bf16(const bf16* p, float (&v)[V]) {
  if constexpr (V == 8) {
    const uint4 raw = *reinterpret_cast<const uint4*>(p);
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = __bfloat1622float2(h[i]);
      v[2 * i] = f.x;
      v[2 * i + 1] = f.y;
    }
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) v[i] = __bfloat162float(p[i]);
  }
}
template <int V> __device__ __forceinline__ void store_bf16(bf16* p, const float (&v)[V]) {
  if constexpr (V == 8) {
    uint4 raw;
    __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&raw);
#pragma unroll
    for (int i = 0; i < 4; ++i) h[i] = __floats2bfloat162_rn(v[2 * i], v[2 * i + 1]);
    *reinterpret_cast<uint4*>(p) = raw;
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) p[i] = __float2bfloat16_rn(v[i]);
  }
}
template <int V> __device__ __forceinline__ void load_f32(const float* p, float (&v)[V]) {
  if constexpr (V == 8) {
    const float4 a = reinterpret_cast<const float4*>(p)[0], b = reinterpret_cast<const float4*>(p)[1];
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) v[i] = p[i];
  }
}
template <int V> __device__ __forceinline__ void store_f32(float* p, const float (&v)[V]) {
  if constexpr (V == 8) {
    reinterpret_cast<float4*>(p)[0] = make_float4(v[0], v[1], v[2], v[3]);
    reinterpret_cast<float4*>(p)[1] = make_float4(v[4], v[5], v[6], v[7]);
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) p[i] = v[i];
  }
}

// Block a: copies token a / k's row to its permuted row (nothing when dropped). W is the word
// moved per access: uint4 (8 bf16) or bf16; `words` per row.
template <class W>
__global__ void __launch_bounds__(kRowThreads)
    permute_kernel(const W* __restrict__ x, const int32_t* __restrict__ row_of_slot, int k, int64_t words,
                   W* __restrict__ xp) {
  const int64_t a = blockIdx.x;
  const int row = row_of_slot[a];
  if (row < 0) return;
  const W* src = x + (a / k) * words;
  W* dst = xp + int64_t(row) * words;
  for (int64_t i = threadIdx.x; i < words; i += blockDim.x) dst[i] = src[i];
}

// Block t: out[t] += sum over t's kept slots, in ascending row order, of gate * in[row]
// (gates null: 1, which makes each step a plain add).
template <int V>
__global__ void __launch_bounds__(kRowThreads)
    gather_add_kernel(const bf16* __restrict__ in, const float* __restrict__ gates,
                      const int32_t* __restrict__ row_of_slot, int k, int64_t H, float* __restrict__ out) {
  __shared__ int srow[kMaxK];
  __shared__ float sgate[kMaxK];
  __shared__ int scount;
  const int64_t t = blockIdx.x;
  if (threadIdx.x == 0) {
    int m = 0;
    for (int s = 0; s < k; ++s) {
      const int r = row_of_slot[t * k + s];
      if (r < 0) continue;
      const float g = gates ? gates[t * k + s] : 1.f;
      int j = m++;
      for (; j > 0 && srow[j - 1] > r; --j) {
        srow[j] = srow[j - 1];
        sgate[j] = sgate[j - 1];
      }
      srow[j] = r;
      sgate[j] = g;
    }
    scount = m;
  }
  __syncthreads();
  const int m = scount;
  float* o = out + t * H;
  for (int64_t h = int64_t(threadIdx.x) * V; h < H; h += int64_t(blockDim.x) * V) {
    float acc[V];
    load_f32<V>(o + h, acc);
    for (int j = 0; j < m; ++j) {
      float v[V];
      load_bf16<V>(in + int64_t(srow[j]) * H + h, v);
      const float g = sgate[j];
#pragma unroll
      for (int i = 0; i < V; ++i) acc[i] = fmaf(g, v[i], acc[i]);
    }
    store_f32<V>(o + h, acc);
  }
}

// Block t: dyp[row] = bf16(gate * dy[t]) and dgates[t, s] = dot(dy[t], yp[row]) for each slot
// (a fixed-order per-thread fma chain, then block_sum's fixed tree).
template <int V>
__global__ void __launch_bounds__(kRowThreads)
    combine_backward_kernel(const float* __restrict__ dy, const bf16* __restrict__ yp,
                            const float* __restrict__ gates, const int32_t* __restrict__ row_of_slot, int k,
                            int64_t H, bf16* __restrict__ dyp, float* __restrict__ dgates) {
  __shared__ float red[32];
  const int64_t t = blockIdx.x;
  int row[kMaxK];
  float g[kMaxK], acc[kMaxK];
#pragma unroll
  for (int s = 0; s < kMaxK; ++s) {
    row[s] = -1;
    g[s] = acc[s] = 0.f;
    if (s < k) {
      row[s] = row_of_slot[t * k + s];
      g[s] = gates[t * k + s];
    }
  }
  const float* d = dy + t * H;
  for (int64_t h = int64_t(threadIdx.x) * V; h < H; h += int64_t(blockDim.x) * V) {
    float dv[V];
    load_f32<V>(d + h, dv);
#pragma unroll
    for (int s = 0; s < kMaxK; ++s) {
      if (s >= k || row[s] < 0) continue;
      const int64_t base = int64_t(row[s]) * H + h;
      float o[V], v[V];
#pragma unroll
      for (int i = 0; i < V; ++i) o[i] = g[s] * dv[i];
      store_bf16<V>(dyp + base, o);
      load_bf16<V>(yp + base, v);
#pragma unroll
      for (int i = 0; i < V; ++i) acc[s] = fmaf(v[i], dv[i], acc[s]);
    }
  }
#pragma unroll
  for (int s = 0; s < kMaxK; ++s) {
    if (s >= k) break;  // uniform
    const float sum = block_sum(acc[s], red);
    if (threadIdx.x == 0) dgates[t * k + s] = row[s] >= 0 ? sum : 0.f;
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

void check_dispatch(const char* op, int64_t rows, int top_k) {
  MF_CHECK(rows >= 0 && top_k >= 1 && top_k <= kDispatchMaxTopK, op, ": need rows >= 0 and 1 <= top_k <= ",
           kDispatchMaxTopK, ", got rows=", rows, " top_k=", top_k);
  MF_CHECK(rows * top_k <= int64_t(INT_MAX), op, ": ", rows, " x ", top_k, " assignments do not fit int32 row indices");
}

void check_rows(const char* op, int64_t rows, int top_k, int64_t H) {
  check_dispatch(op, rows, top_k);
  MF_CHECK(H > 0, op, ": H must be positive, got ", H);
}

}  // namespace

size_t plan_dispatch_scratch_bytes(int experts) { return size_t(experts > 0 ? experts : 0) * sizeof(int64_t); }

void plan_dispatch(const int32_t* expert_index, int64_t rows, int top_k, int experts, int capacity,
                   DispatchPlanView plan, void* scratch, cudaStream_t stream) {
  check_dispatch("plan_dispatch", rows, top_k);
  MF_CHECK(experts >= 1 && experts <= INT_MAX - 1, "plan_dispatch: bad expert count ", experts);
  MF_CHECK(scratch && (reinterpret_cast<uintptr_t>(scratch) % alignof(int64_t)) == 0,
           "plan_dispatch: scratch must be non-null and 8-byte aligned");
  MF_CHECK(plan.counts && plan.offsets && plan.row_of_slot && plan.slot_of_row,
           "plan_dispatch: every array of the plan is needed");
  int64_t* cutoff = static_cast<int64_t*>(scratch);
  // Launched even for rows == 0: counts and offsets are then all zero.
  plan_count_kernel<<<unsigned(experts), kPlanThreads, 0, stream>>>(expert_index, rows, top_k, capacity, plan.counts,
                                                                    cutoff);
  check_launch("plan_dispatch (count)");
  plan_place_kernel<<<unsigned(experts), kPlanThreads, 0, stream>>>(expert_index, rows, top_k, experts, plan.counts,
                                                                    cutoff, plan.offsets, plan.row_of_slot,
                                                                    plan.slot_of_row);
  check_launch("plan_dispatch (place)");
}

void permute_rows(const bf16* x, DispatchPlanView plan, int64_t rows, int top_k, int64_t H, bf16* xp,
                  cudaStream_t stream) {
  check_rows("permute_rows", rows, top_k, H);
  if (rows == 0) return;
  const unsigned grid = unsigned(rows * top_k);
  if (H % 8 == 0 && aligned16(x) && aligned16(xp))
    permute_kernel<uint4><<<grid, kRowThreads, 0, stream>>>(reinterpret_cast<const uint4*>(x), plan.row_of_slot,
                                                            top_k, H / 8, reinterpret_cast<uint4*>(xp));
  else
    permute_kernel<bf16><<<grid, kRowThreads, 0, stream>>>(x, plan.row_of_slot, top_k, H, xp);
  check_launch("permute_rows");
}

void permute_rows_backward(const bf16* dxp, DispatchPlanView plan, int64_t rows, int top_k, int64_t H, float* dx,
                           cudaStream_t stream) {
  check_rows("permute_rows_backward", rows, top_k, H);
  if (rows == 0) return;
  if (H % 8 == 0 && aligned16(dxp) && aligned16(dx))
    gather_add_kernel<8><<<unsigned(rows), kRowThreads, 0, stream>>>(dxp, nullptr, plan.row_of_slot, top_k, H, dx);
  else
    gather_add_kernel<1><<<unsigned(rows), kRowThreads, 0, stream>>>(dxp, nullptr, plan.row_of_slot, top_k, H, dx);
  check_launch("permute_rows_backward");
}

void combine_rows(const bf16* yp, const float* gates, DispatchPlanView plan, int64_t rows, int top_k, int64_t H,
                  float* y, cudaStream_t stream) {
  check_rows("combine_rows", rows, top_k, H);
  MF_CHECK(gates, "combine_rows: gates are needed");
  if (rows == 0) return;
  if (H % 8 == 0 && aligned16(yp) && aligned16(y))
    gather_add_kernel<8><<<unsigned(rows), kRowThreads, 0, stream>>>(yp, gates, plan.row_of_slot, top_k, H, y);
  else
    gather_add_kernel<1><<<unsigned(rows), kRowThreads, 0, stream>>>(yp, gates, plan.row_of_slot, top_k, H, y);
  check_launch("combine_rows");
}

void combine_rows_backward(const float* dy, const bf16* yp, const float* gates, DispatchPlanView plan, int64_t rows,
                           int top_k, int64_t H, bf16* dyp, float* dgates, cudaStream_t stream) {
  check_rows("combine_rows_backward", rows, top_k, H);
  MF_CHECK(gates && dgates, "combine_rows_backward: gates and dgates are needed");
  if (rows == 0) return;
  if (H % 8 == 0 && aligned16(dy) && aligned16(yp) && aligned16(dyp))
    combine_backward_kernel<8><<<unsigned(rows), kRowThreads, 0, stream>>>(dy, yp, gates, plan.row_of_slot, top_k, H,
                                                                           dyp, dgates);
  else
    combine_backward_kernel<1><<<unsigned(rows), kRowThreads, 0, stream>>>(dy, yp, gates, plan.row_of_slot, top_k, H,
                                                                           dyp, dgates);
  check_launch("combine_rows_backward");
}

}  // namespace mf::cuda

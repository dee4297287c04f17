// Router kernels, one warp per row: each lane keeps its (at most 8) experts in registers, so top-k
// is k rounds of shuffle reductions with no shared memory. The aux losses reduce in two fixed-order
// stages (per-block partials over row chunks, then one block), never with float atomics.
#include "kernels/cuda/router.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>

#include "core/error.h"
#include "kernels/cuda/common.cuh"

namespace mf::cuda {

namespace {

constexpr unsigned kFull = 0xffffffffu;
constexpr int kPer = kRouterMaxExperts / 32;  // experts per lane
constexpr int kMaxK = kRouterMaxTopK;
constexpr int kWarps = 8;                     // rows per block in the warp-per-row kernels
constexpr int kThreads = kWarps * 32;

// Stage one of the aux reductions: blocks of kThreads, each over a contiguous chunk of rows.
constexpr int64_t kAuxRowsPerBlock = 64;
constexpr int kAuxMaxBlocks = 512;

__device__ __forceinline__ double warp_sum_f64(double v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFull, v, offset);
  return v;
}
__device__ __forceinline__ double warp_max_f64(double v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = fmax(v, __shfl_xor_sync(kFull, v, offset));
  return v;
}

// Softmax of one row z [E] in double (mf::softmax_row_f64): p[i] is expert lane + 32 i (0 past
// E). Returns logsumexp; every lane gets the same p-sum, max and result (butterfly reductions).
__device__ __forceinline__ double warp_softmax_f64(const float* z, int E, int lane, double (&p)[kPer]) {
  double mx = -INFINITY;
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    const int e = lane + 32 * i;
    p[i] = e < E ? double(z[e]) : -INFINITY;
    mx = fmax(mx, p[i]);
  }
  mx = warp_max_f64(mx);
  double sum = 0;
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    const int e = lane + 32 * i;
    p[i] = e < E ? exp(p[i] - mx) : 0.0;
    sum += p[i];
  }
  sum = warp_sum_f64(sum);
#pragma unroll
  for (int i = 0; i < kPer; ++i) p[i] /= sum;
  return mx + log(sum);
}

// One warp per row. Selection repeats k times: each lane proposes its best untaken expert
// (ascending index, strict '>', so the lowest index wins a tie), the warp reduces the proposals
// by (score desc, index asc), and lane 0's winner is broadcast so all lanes agree even on
// pathological inputs.
__global__ void __launch_bounds__(kThreads)
    topk_forward_kernel(const float* __restrict__ logits, int64_t rows, int E, int k, bool gated, bool renorm,
                        const float* __restrict__ bias, float* __restrict__ probs, int32_t* __restrict__ expert_index,
                        float* __restrict__ gates) {
  const int lane = threadIdx.x & 31;
  const int64_t t = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (t >= rows) return;  // uniform over the warp
  const float* z = logits + t * E;
  double p[kPer], score[kPer];
  warp_softmax_f64(z, E, lane, p);
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    const int e = lane + 32 * i;
    score[i] = 0.0;
    if (e < E) {
      if (probs) probs[t * E + e] = float(p[i]);
      score[i] = gated ? p[i] : double(z[e]);
      if (bias) score[i] += double(bias[e]);
    }
  }
  unsigned taken = 0;  // bit i: expert lane + 32 i already chosen
  int sel_e[kMaxK];
  double sel_p[kMaxK], sel_z[kMaxK];
#pragma unroll
  for (int j = 0; j < kMaxK; ++j) {
    sel_e[j] = 0;
    sel_p[j] = 0.0;
    sel_z[j] = 0.0;
    if (j < k) {
      double best = 0.0;
      int best_e = INT_MAX;  // none
#pragma unroll
      for (int i = 0; i < kPer; ++i) {
        const int e = lane + 32 * i;
        if (e < E && !((taken >> i) & 1u) && (best_e == INT_MAX || score[i] > best)) {
          best = score[i];
          best_e = e;
        }
      }
#pragma unroll
      for (int offset = 16; offset > 0; offset >>= 1) {
        const double other = __shfl_xor_sync(kFull, best, offset);
        const int other_e = __shfl_xor_sync(kFull, best_e, offset);
        if (other_e != INT_MAX &&
            (best_e == INT_MAX || other > best || (other == best && other_e < best_e))) {
          best = other;
          best_e = other_e;
        }
      }
      best_e = __shfl_sync(kFull, best_e, 0);
      // k <= E, so some expert is always left: best_e is in [0, E).
      const int owner = best_e & 31, slot = best_e >> 5;
      double pv = 0.0;
#pragma unroll
      for (int i = 0; i < kPer; ++i)
        if (i == slot) pv = p[i];
      pv = __shfl_sync(kFull, pv, owner);
      if (lane == owner) taken |= 1u << slot;
      sel_e[j] = best_e;
      sel_p[j] = pv;
      sel_z[j] = double(z[best_e]);
    }
  }
  if (lane != 0) return;
  int32_t* idx_out = expert_index + t * k;
  float* gate_out = gates + t * k;
  if (gated) {
    double kept = 0;
#pragma unroll
    for (int s = 0; s < kMaxK; ++s)
      if (s < k) kept += sel_p[s];
#pragma unroll
    for (int s = 0; s < kMaxK; ++s)
      if (s < k) {
        idx_out[s] = sel_e[s];
        gate_out[s] = float(renorm ? sel_p[s] / kept : sel_p[s]);
      }
  } else {  // softmax over the k picked logits (mf::softmax_row_f64 on them)
    double mx = sel_z[0];
#pragma unroll
    for (int s = 1; s < kMaxK; ++s)
      if (s < k) mx = fmax(mx, sel_z[s]);
    double ex[kMaxK], sum = 0;
#pragma unroll
    for (int s = 0; s < kMaxK; ++s) {
      ex[s] = 0.0;
      if (s < k) sum += (ex[s] = exp(sel_z[s] - mx));
    }
#pragma unroll
    for (int s = 0; s < kMaxK; ++s)
      if (s < k) {
        idx_out[s] = sel_e[s];
        gate_out[s] = float(ex[s] / sum);
      }
  }
}

// One warp per row; every lane reads the row's k slots (broadcast loads) and writes its experts.
__global__ void __launch_bounds__(kThreads)
    topk_backward_kernel(const float* __restrict__ probs, const int32_t* __restrict__ expert_index,
                         const float* __restrict__ gates, const float* __restrict__ dgates,
                         const int32_t* __restrict__ row_of_slot, int64_t rows, int E, int k, bool gated, bool renorm,
                         float* __restrict__ dlogits) {
  const int lane = threadIdx.x & 31;
  const int64_t t = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (t >= rows) return;
  int sel_e[kMaxK];
  double g[kMaxK], dg[kMaxK];
  double dot = 0;  // sum_s g_s dg_s
#pragma unroll
  for (int s = 0; s < kMaxK; ++s) {
    sel_e[s] = -1;
    g[s] = dg[s] = 0.0;
    if (s < k) {
      const int64_t a = t * k + s;
      const int e = expert_index[a];
      sel_e[s] = (e >= 0 && e < E) ? e : -1;
      g[s] = double(gates[a]);
      dg[s] = (row_of_slot && row_of_slot[a] < 0) ? 0.0 : double(dgates[a]);
      dot += g[s] * dg[s];
    }
  }
  float* dz = dlogits + t * E;
  if (!gated) {  // dz_j = g_j (dg_j - sum_s g_s dg_s) on the picked logits, 0 elsewhere
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      const int e = lane + 32 * i;
      if (e >= E) continue;
      double v = 0.0;
#pragma unroll
      for (int s = 0; s < kMaxK; ++s)
        if (s < k && sel_e[s] == e) v = g[s] * (dg[s] - dot);
      dz[e] = float(v);
    }
    return;
  }
  // Gates read from p = softmax(z): dp, then dz = p (dp - sum(p dp)).
  const float* pr = probs + t * E;
  double S = 0;  // renormalised: g_s = p_s / S
  if (renorm) {
#pragma unroll
    for (int s = 0; s < kMaxK; ++s)
      if (s < k && sel_e[s] >= 0) S += double(pr[sel_e[s]]);
  }
  double dp[kPer], pe[kPer], pdot = 0;
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    const int e = lane + 32 * i;
    dp[i] = pe[i] = 0.0;
    if (e >= E) continue;
    pe[i] = double(pr[e]);
#pragma unroll
    for (int s = 0; s < kMaxK; ++s)
      if (s < k && sel_e[s] == e) dp[i] += renorm ? (dg[s] - dot) / S : dg[s];
    pdot += dp[i] * pe[i];
  }
  pdot = warp_sum_f64(pdot);
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    const int e = lane + 32 * i;
    if (e < E) dz[e] = float(pe[i] * (dp[i] - pdot));
  }
}

// ---- auxiliary losses ---------------------------------------------------------------------
// Scratch (doubles): partials [blocks][2E + 2] = (sum_t p_t,e for e < E; routed slots per e;
// sum lse^2; counted rows), then stats [E + 1] = (routed slots per e; counted rows) for the
// backward.

int aux_blocks(int64_t rows) {
  const int64_t b = (rows + kAuxRowsPerBlock - 1) / kAuxRowsPerBlock;
  return int(b < 1 ? 1 : (b > kAuxMaxBlocks ? kAuxMaxBlocks : b));
}

// Block b takes rows [b * chunk, (b + 1) * chunk); warp w of it rows w, w + 8, ... of that
// chunk, so every partial is a fixed-order sum. Routed counts are integers (shared-memory
// atomics: order-independent).
__global__ void __launch_bounds__(kThreads)
    aux_partials_kernel(const float* __restrict__ logits, const int32_t* __restrict__ expert_index,
                        const uint8_t* __restrict__ counted, int64_t rows, int E, int k, int64_t chunk,
                        bool with_probs, double* __restrict__ partials) {
  __shared__ double warp_p[kWarps][kRouterMaxExperts];
  __shared__ double warp_z[kWarps];
  __shared__ int warp_n[kWarps];
  __shared__ int hist[kRouterMaxExperts];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int e = threadIdx.x; e < E; e += blockDim.x) hist[e] = 0;
  __syncthreads();
  const int64_t r0 = int64_t(blockIdx.x) * chunk;
  const int64_t r1 = r0 + chunk < rows ? r0 + chunk : rows;
  double acc[kPer];
#pragma unroll
  for (int i = 0; i < kPer; ++i) acc[i] = 0.0;
  double zsum = 0;
  int n = 0;
  for (int64_t t = r0 + warp; t < r1; t += kWarps) {
    if (counted && !counted[t]) continue;  // uniform over the warp
    ++n;
    if (with_probs) {
      double p[kPer];
      const double lse = warp_softmax_f64(logits + t * E, E, lane, p);
#pragma unroll
      for (int i = 0; i < kPer; ++i) acc[i] += p[i];  // 0 past E
      zsum += lse * lse;
    }
    for (int j = lane; j < k; j += 32) {
      const int e = expert_index[t * k + j];
      if (e >= 0 && e < E) atomicAdd(&hist[e], 1);
    }
  }
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    const int e = lane + 32 * i;
    if (e < E) warp_p[warp][e] = acc[i];
  }
  if (lane == 0) {
    warp_z[warp] = zsum;
    warp_n[warp] = n;
  }
  __syncthreads();
  double* out = partials + int64_t(blockIdx.x) * (2 * E + 2);
  for (int e = threadIdx.x; e < E; e += blockDim.x) {
    double s = 0;
    for (int w = 0; w < kWarps; ++w) s += warp_p[w][e];
    out[e] = s;
    out[E + e] = double(hist[e]);
  }
  if (threadIdx.x == 0) {
    double z = 0, c = 0;
    for (int w = 0; w < kWarps; ++w) {
      z += warp_z[w];
      c += double(warp_n[w]);
    }
    out[2 * E] = z;
    out[2 * E + 1] = c;
  }
}

// One block: sums the partials over blocks in block order. Writes the losses (out, nullable)
// and/or the routed counts and row count (stats, nullable).
__global__ void __launch_bounds__(kThreads)
    aux_finalize_kernel(const double* __restrict__ partials, int blocks, int E, float* __restrict__ out,
                        double* __restrict__ stats) {
  __shared__ double term[kRouterMaxExperts];
  __shared__ double total_n, total_z;
  const int stride = 2 * E + 2;
  if (threadIdx.x == 0) {
    double n = 0, z = 0;
    for (int b = 0; b < blocks; ++b) {
      z += partials[int64_t(b) * stride + 2 * E];
      n += partials[int64_t(b) * stride + 2 * E + 1];
    }
    total_n = n;
    total_z = z;
    if (stats) stats[E] = n;
  }
  __syncthreads();
  const double n = total_n;
  for (int e = threadIdx.x; e < E; e += blockDim.x) {
    double P = 0, routed = 0;
    for (int b = 0; b < blocks; ++b) {
      P += partials[int64_t(b) * stride + e];
      routed += partials[int64_t(b) * stride + E + e];
    }
    if (stats) stats[e] = routed;
    term[e] = n > 0 ? (routed / n) * (P / n) : 0.0;
  }
  __syncthreads();
  if (threadIdx.x == 0 && out) {
    double lb = 0;
    for (int e = 0; e < E; ++e) lb += term[e];
    lb *= E;
    out[0] = n > 0 ? float(lb) : 0.f;
    out[1] = n > 0 ? float(total_z / n) : 0.f;
  }
}

// One warp per counted row: dz += p (dp - sum p dp) with dp_e = lb_scale E f_e / n, plus
// z_scale 2 lse p / n.
__global__ void __launch_bounds__(kThreads)
    aux_backward_kernel(const float* __restrict__ logits, const uint8_t* __restrict__ counted, int64_t rows, int E,
                        const double* __restrict__ stats, double lb_scale, double z_scale,
                        float* __restrict__ dlogits) {
  const int lane = threadIdx.x & 31;
  const int64_t t = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (t >= rows || (counted && !counted[t])) return;
  const double n = stats[E];
  if (!(n > 0)) return;
  double p[kPer];
  const double lse = warp_softmax_f64(logits + t * E, E, lane, p);
  double dp[kPer], pdot = 0;
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    const int e = lane + 32 * i;
    dp[i] = e < E ? lb_scale * E * (stats[e] / n) / n : 0.0;
    pdot += dp[i] * p[i];
  }
  pdot = warp_sum_f64(pdot);
  float* dz = dlogits + t * E;
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    const int e = lane + 32 * i;
    if (e < E) dz[e] += float(p[i] * (dp[i] - pdot) + z_scale * 2.0 * lse * p[i] / n);
  }
}

__global__ void __launch_bounds__(kThreads)
    counts_kernel(const int32_t* __restrict__ expert_index, const int32_t* __restrict__ row_of_slot,
                  const uint8_t* __restrict__ counted, int64_t assignments, int k, int E, int32_t* __restrict__ counts) {
  __shared__ int hist[kRouterMaxExperts];
  for (int e = threadIdx.x; e < E; e += blockDim.x) hist[e] = 0;
  __syncthreads();
  for (int64_t a = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; a < assignments;
       a += int64_t(gridDim.x) * blockDim.x) {
    if (counted && !counted[a / k]) continue;
    if (row_of_slot && row_of_slot[a] < 0) continue;
    const int e = expert_index[a];
    if (e >= 0 && e < E) atomicAdd(&hist[e], 1);
  }
  __syncthreads();
  for (int e = threadIdx.x; e < E; e += blockDim.x)
    if (hist[e]) atomicAdd(&counts[e], hist[e]);
}

void check_shape(const char* op, int64_t rows, int experts, int top_k) {
  MF_CHECK(rows >= 0 && experts >= 1 && experts <= kRouterMaxExperts, op, ": need rows >= 0 and 1 <= experts <= ",
           kRouterMaxExperts, ", got rows=", rows, " experts=", experts);
  MF_CHECK(top_k >= 1 && top_k <= kRouterMaxTopK && top_k <= experts, op, ": top_k ", top_k, " is not in [1, ",
           experts < kRouterMaxTopK ? experts : kRouterMaxTopK, "]");
}

unsigned row_blocks(int64_t rows) { return blocks_for(rows, kWarps); }

}  // namespace

void router_topk_forward(const float* logits, int64_t rows, int experts, int top_k, TopKGating kind, bool renormalize,
                         const float* selection_bias, float* probs, int32_t* expert_index, float* gates,
                         cudaStream_t stream) {
  check_shape("router_topk_forward", rows, experts, top_k);
  MF_CHECK(kind != TopKGating::Switch || top_k == 1, "router_topk_forward: switch routing has top_k 1, got ", top_k);
  if (rows == 0) return;
  const bool gated = kind != TopKGating::TopKSoftmax;
  const bool renorm = kind == TopKGating::SoftmaxTopK && renormalize;
  topk_forward_kernel<<<row_blocks(rows), kThreads, 0, stream>>>(logits, rows, experts, top_k, gated, renorm,
                                                                  selection_bias, probs, expert_index, gates);
  check_launch("router_topk_forward");
}

void router_topk_backward(const float* probs, const int32_t* expert_index, const float* gates, const float* dgates,
                          const int32_t* row_of_slot, int64_t rows, int experts, int top_k, TopKGating kind,
                          bool renormalize, float* dlogits, cudaStream_t stream) {
  check_shape("router_topk_backward", rows, experts, top_k);
  MF_CHECK(kind != TopKGating::Switch || top_k == 1, "router_topk_backward: switch routing has top_k 1, got ", top_k);
  const bool gated = kind != TopKGating::TopKSoftmax;
  MF_CHECK(!gated || probs, "router_topk_backward: softmax-gated routing needs the forward's probs");
  if (rows == 0) return;
  const bool renorm = kind == TopKGating::SoftmaxTopK && renormalize;
  topk_backward_kernel<<<row_blocks(rows), kThreads, 0, stream>>>(probs, expert_index, gates, dgates, row_of_slot,
                                                                   rows, experts, top_k, gated, renorm, dlogits);
  check_launch("router_topk_backward");
}

size_t router_aux_scratch_bytes(int64_t rows, int experts) {
  return (size_t(aux_blocks(rows)) * size_t(2 * experts + 2) + size_t(experts + 1)) * sizeof(double);
}

void router_aux_forward(const float* logits, const int32_t* expert_index, int64_t rows, int experts, int top_k,
                        const uint8_t* counted, float* out, void* scratch, cudaStream_t stream) {
  check_shape("router_aux_forward", rows, experts, top_k);
  MF_CHECK(scratch && (reinterpret_cast<uintptr_t>(scratch) % alignof(double)) == 0,
           "router_aux_forward: scratch must be non-null and 8-byte aligned");
  const int blocks = aux_blocks(rows);
  const int64_t chunk = (rows + blocks - 1) / blocks;
  double* partials = static_cast<double*>(scratch);
  aux_partials_kernel<<<unsigned(blocks), kThreads, 0, stream>>>(logits, expert_index, counted, rows, experts, top_k,
                                                                  chunk, true, partials);
  check_launch("router_aux_forward (partials)");
  aux_finalize_kernel<<<1, kThreads, 0, stream>>>(partials, blocks, experts, out, nullptr);
  check_launch("router_aux_forward (finalize)");
}

void router_aux_backward(const float* logits, const int32_t* expert_index, int64_t rows, int experts, int top_k,
                         const uint8_t* counted, float lb_coef, float z_coef, float grad_scale, float* dlogits,
                         void* scratch, cudaStream_t stream) {
  check_shape("router_aux_backward", rows, experts, top_k);
  MF_CHECK(scratch && (reinterpret_cast<uintptr_t>(scratch) % alignof(double)) == 0,
           "router_aux_backward: scratch must be non-null and 8-byte aligned");
  if (rows == 0 || (lb_coef == 0.f && z_coef == 0.f) || grad_scale == 0.f) return;
  const int blocks = aux_blocks(rows);
  const int64_t chunk = (rows + blocks - 1) / blocks;
  double* partials = static_cast<double*>(scratch);
  double* stats = partials + int64_t(blocks) * (2 * experts + 2);
  // Only the routed counts and the row count are needed: the softmax sums are skipped.
  aux_partials_kernel<<<unsigned(blocks), kThreads, 0, stream>>>(logits, expert_index, counted, rows, experts, top_k,
                                                                  chunk, false, partials);
  check_launch("router_aux_backward (partials)");
  aux_finalize_kernel<<<1, kThreads, 0, stream>>>(partials, blocks, experts, nullptr, stats);
  check_launch("router_aux_backward (finalize)");
  const double lb_scale = double(lb_coef) * double(grad_scale), z_scale = double(z_coef) * double(grad_scale);
  aux_backward_kernel<<<row_blocks(rows), kThreads, 0, stream>>>(logits, counted, rows, experts, stats, lb_scale,
                                                                  z_scale, dlogits);
  check_launch("router_aux_backward");
}

void router_expert_counts(const int32_t* expert_index, const int32_t* row_of_slot, const uint8_t* counted,
                          int64_t rows, int top_k, int experts, int32_t* counts, cudaStream_t stream) {
  check_shape("router_expert_counts", rows, experts, top_k);
  check(cudaMemsetAsync(counts, 0, size_t(experts) * sizeof(int32_t), stream), "router_expert_counts (memset)");
  const int64_t assignments = rows * top_k;
  if (assignments == 0) return;
  const unsigned blocks = unsigned(std::min<int64_t>(blocks_for(assignments, kThreads), 1024));
  counts_kernel<<<blocks, kThreads, 0, stream>>>(expert_index, row_of_slot, counted, assignments, top_k, experts,
                                                 counts);
  check_launch("router_expert_counts");
}

namespace {

// As the CPU's softplus: exact log1p(exp(x)) below 20, x above (where they agree in fp32).
__device__ __forceinline__ float softplus_f(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

__global__ void noisy_logits_forward_kernel(const float* logits, const float* noise_logits, const float* gaussian,
                                            float* selection, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    selection[i] = logits[i] + gaussian[i] * softplus_f(noise_logits[i]);
}

__global__ void noisy_logits_backward_kernel(const float* dselection, const float* noise_logits,
                                             const float* gaussian, float* dnoise_logits, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dnoise_logits[i] = dselection[i] * gaussian[i] * (1.0f / (1.0f + expf(-noise_logits[i])));
}

unsigned elementwise_grid(int64_t n) { return unsigned(std::min<int64_t>((n + 255) / 256, 4096)); }

}  // namespace

void noisy_logits_forward(const float* logits, const float* noise_logits, const float* gaussian, float* selection,
                          int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  noisy_logits_forward_kernel<<<elementwise_grid(n), 256, 0, stream>>>(logits, noise_logits, gaussian, selection, n);
  check_launch("noisy_logits_forward");
}

void noisy_logits_backward(const float* dselection, const float* noise_logits, const float* gaussian,
                           float* dnoise_logits, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  noisy_logits_backward_kernel<<<elementwise_grid(n), 256, 0, stream>>>(dselection, noise_logits, gaussian,
                                                                         dnoise_logits, n);
  check_launch("noisy_logits_backward");
}

}  // namespace mf::cuda

// AdamW, gradient norm and clipping kernels. Per-group constants (bias corrections, decay) are
// computed on the host as the CPU does and passed in the kernel's parameters, so nothing is
// uploaded per step; the clip factor stays on the device, read by the update without a round trip.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/error.h"
#include "kernels/cuda/adamw.h"
#include "kernels/cuda/common.cuh"

namespace mf::cuda {

namespace {

constexpr int kThreads = 256;

unsigned grid_for(int64_t items, int64_t per_block) {
  return unsigned(std::clamp<int64_t>((items + per_block - 1) / per_block, 1, int64_t(1) << 20));
}

// A group's step constants, computed on the host exactly as the CPU adamw_update computes them.
struct GroupConsts {
  float step_size, bc2_sqrt, decay, beta1, beta2, one_minus_beta1, one_minus_beta2, eps;
};
struct GroupTable {
  GroupConsts group[kAdamwMaxGroups];
  int count;
};

__device__ __forceinline__ void adamw_element(float& p, float g, float& m, float& v, const GroupConsts& h) {
  m = h.beta1 * m + h.one_minus_beta1 * g;
  v = h.beta2 * v + h.one_minus_beta2 * g * g;
  p = p * h.decay - h.step_size * (m / (sqrtf(v) / h.bc2_sqrt + h.eps));
}

// One block per segment (grid-stride over segments). vec: the buffers are 16-byte aligned (the
// compute copy 8-byte), so segments whose offset is a multiple of 4 take 4 elements per access;
// the last count % 4 elements (and unaligned segments) go one by one.
__global__ void adamw_kernel(float* master, const float* grads, float* exp_avg, float* exp_avg_sq, bf16* compute,
                             const AdamwSegment* segments, int64_t segment_count, GroupTable table,
                             const float* grad_scale, bool vec) {
  const float gs = grad_scale != nullptr ? *grad_scale : 1.0f;
  for (int64_t s = blockIdx.x; s < segment_count; s += gridDim.x) {
    const AdamwSegment seg = segments[s];
    if (seg.group < 0 || seg.group >= table.count || seg.offset < 0 || seg.count <= 0) continue;
    const GroupConsts h = table.group[seg.group];
    int64_t done = 0;
    if (vec && seg.offset % 4 == 0) {
      const int64_t vectors = seg.count / 4;
      for (int64_t j = threadIdx.x; j < vectors; j += blockDim.x) {
        const int64_t i = seg.offset + 4 * j;
        Pack<float, 4> p = load_pack<4>(master + i), m = load_pack<4>(exp_avg + i), v = load_pack<4>(exp_avg_sq + i);
        const Pack<float, 4> g = load_pack<4>(grads + i);
#pragma unroll
        for (int k = 0; k < 4; ++k) adamw_element(p.v[k], g.v[k] * gs, m.v[k], v.v[k], h);
        store_pack<4>(master + i, p);
        store_pack<4>(exp_avg + i, m);
        store_pack<4>(exp_avg_sq + i, v);
        if (compute != nullptr) {
          Pack<bf16, 4> c;
#pragma unroll
          for (int k = 0; k < 4; ++k) c.v[k] = __float2bfloat16_rn(p.v[k]);
          store_pack<4>(compute + i, c);
        }
      }
      done = vectors * 4;
    }
    for (int64_t j = done + threadIdx.x; j < seg.count; j += blockDim.x) {
      const int64_t i = seg.offset + j;
      float p = master[i], m = exp_avg[i], v = exp_avg_sq[i];
      adamw_element(p, grads[i] * gs, m, v, h);
      master[i] = p;
      exp_avg[i] = m;
      exp_avg_sq[i] = v;
      if (compute != nullptr) compute[i] = __float2bfloat16_rn(p);
    }
  }
}

// Block-wide double sum (blockDim.x a multiple of 32); thread 0 gets the result. Fixed order.
__device__ double block_sum_double(double v) {
  __shared__ double warp_total[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  if (lane == 0) warp_total[warp] = v;
  __syncthreads();
  v = 0.0;
  if (warp == 0) {
    v = lane < warps ? warp_total[lane] : 0.0;
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  }
  return v;
}

constexpr int kSumsqThreads = 256;
constexpr int64_t kSumsqMaxBlocks = 1024;  // = threads of the final block (one partial each)
constexpr int kSumsqFinalThreads = int(kSumsqMaxBlocks);

int64_t sumsq_blocks(int64_t n) {
  return std::clamp<int64_t>((n + kSumsqThreads * 16 - 1) / (kSumsqThreads * 16), 1, kSumsqMaxBlocks);
}

__global__ void sumsq_partial_kernel(const float* x, int64_t n, bool vec, double* partials) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  double acc = 0.0;
  int64_t done = 0;
  if (vec) {
    const int64_t vectors = n / 4;
    for (int64_t j = tid; j < vectors; j += stride) {
      const Pack<float, 4> a = load_pack<4>(x + 4 * j);
      acc += double(a.v[0] * a.v[0] + a.v[1] * a.v[1] + a.v[2] * a.v[2] + a.v[3] * a.v[3]);
    }
    done = vectors * 4;
  }
  for (int64_t i = done + tid; i < n; i += stride) acc += double(x[i]) * double(x[i]);
  acc = block_sum_double(acc);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

__global__ void sumsq_final_kernel(const double* partials, int64_t parts, float* sumsq) {
  double v = threadIdx.x < parts ? partials[threadIdx.x] : 0.0;
  v = block_sum_double(v);
  if (threadIdx.x == 0) *sumsq = float(v);
}

__global__ void clip_factor_kernel(const float* sumsq, float max_norm, float* factor, float* norm_out) {
  const double norm = sqrt(double(*sumsq));
  float f = 1.0f;
  if (max_norm > 0.0f && isfinite(norm)) {
    const double coef = double(max_norm) / (norm + 1e-6);
    if (coef < 1.0) f = float(coef);
  }
  *factor = f;
  if (norm_out != nullptr) *norm_out = float(norm);
}

// factor_ptr null: scale by factor_value.
__global__ void scale_kernel(float* x, int64_t n, const float* factor_ptr, float factor_value, bool vec) {
  const float f = factor_ptr != nullptr ? *factor_ptr : factor_value;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t done = 0;
  if (vec) {
    const int64_t vectors = n / 4;
    for (int64_t j = tid; j < vectors; j += stride) {
      Pack<float, 4> a = load_pack<4>(x + 4 * j);
#pragma unroll
      for (int k = 0; k < 4; ++k) a.v[k] *= f;
      store_pack<4>(x + 4 * j, a);
    }
    done = vectors * 4;
  }
  for (int64_t i = done + tid; i < n; i += stride) x[i] *= f;
}

__global__ void convert_kernel(const float* src, bf16* dst, int64_t n, bool vec) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t done = 0;
  if (vec) {
    const int64_t vectors = n / 4;
    for (int64_t j = tid; j < vectors; j += stride) {
      const Pack<float, 4> a = load_pack<4>(src + 4 * j);
      Pack<bf16, 4> b;
#pragma unroll
      for (int k = 0; k < 4; ++k) b.v[k] = __float2bfloat16_rn(a.v[k]);
      store_pack<4>(dst + 4 * j, b);
    }
    done = vectors * 4;
  }
  for (int64_t i = done + tid; i < n; i += stride) dst[i] = __float2bfloat16_rn(src[i]);
}

void launch_scale(float* x, int64_t n, const float* factor_ptr, float factor_value, cudaStream_t stream) {
  MF_CHECK(n >= 0, "scale_in_place: negative length ", n);
  if (n == 0) return;
  const bool vec = aligned(x, 16);
  scale_kernel<<<grid_for(n, int64_t(kThreads) * 4), kThreads, 0, stream>>>(x, n, factor_ptr, factor_value, vec);
  check_launch("scale_in_place");
}

}  // namespace

std::vector<AdamwSegment> split_adamw_segments(std::span<const AdamwSegment> segments, int64_t max_count) {
  MF_CHECK(max_count >= 4 && max_count % 4 == 0, "split_adamw_segments: max_count ", max_count,
           " must be a positive multiple of 4");
  std::vector<AdamwSegment> out;
  for (const AdamwSegment& s : segments)
    for (int64_t begin = 0; begin < s.count; begin += max_count)
      out.push_back({s.offset + begin, std::min(max_count, s.count - begin), s.group});
  return out;
}

void check_adamw_segments(std::span<const AdamwSegment> segments, int64_t total, int group_count) {
  for (size_t i = 0; i < segments.size(); ++i) {
    const AdamwSegment& s = segments[i];
    MF_CHECK(s.offset >= 0 && s.count >= 0 && s.offset + s.count <= total, "AdamW segment ", i, " [", s.offset,
             ", ", s.offset + s.count, ") lies outside the parameter buffer of ", total);
    MF_CHECK(s.group >= 0 && s.group < group_count, "AdamW segment ", i, " has group ", s.group, " but there are ",
             group_count, " groups");
  }
}

void adamw_update(float* master, const float* grads, float* exp_avg, float* exp_avg_sq, bf16* compute,
                  const AdamwSegment* segments, int64_t segment_count, std::span<const AdamwGroup> groups,
                  int64_t step, const float* grad_scale, cudaStream_t stream) {
  MF_CHECK(step >= 1, "adamw_update: step must be >= 1, got ", step);
  MF_CHECK(segment_count >= 0, "adamw_update: negative segment count ", segment_count);
  MF_CHECK(!groups.empty() && groups.size() <= size_t(kAdamwMaxGroups), "adamw_update: ", groups.size(),
           " parameter groups (1 to ", kAdamwMaxGroups, " supported)");
  if (segment_count == 0) return;
  GroupTable table{};
  table.count = int(groups.size());
  for (size_t i = 0; i < groups.size(); ++i) {
    const AdamwGroup& g = groups[i];
    // As kernels/cpu/adamw.cpp: bias corrections in double, rounded once.
    const double bc1 = 1.0 - std::pow(double(g.beta1), double(step));
    const double bc2 = 1.0 - std::pow(double(g.beta2), double(step));
    GroupConsts& c = table.group[i];
    c.step_size = float(double(g.lr) / bc1);
    c.bc2_sqrt = float(std::sqrt(bc2));
    c.decay = 1.0f - g.lr * g.weight_decay;
    c.beta1 = g.beta1;
    c.beta2 = g.beta2;
    c.one_minus_beta1 = 1.0f - g.beta1;
    c.one_minus_beta2 = 1.0f - g.beta2;
    c.eps = g.eps;
  }
  const bool vec = aligned(master, 16) && aligned(grads, 16) && aligned(exp_avg, 16) && aligned(exp_avg_sq, 16) &&
                   (compute == nullptr || aligned(compute, 8));
  const unsigned blocks = unsigned(std::min<int64_t>(segment_count, int64_t(1) << 20));
  adamw_kernel<<<blocks, kThreads, 0, stream>>>(master, grads, exp_avg, exp_avg_sq, compute, segments, segment_count,
                                                table, grad_scale, vec);
  check_launch("adamw_update");
}

size_t grad_sumsq_scratch_bytes(int64_t n) { return size_t(sumsq_blocks(n)) * sizeof(double); }

void grad_sumsq(const float* grads, int64_t n, float* sumsq, void* scratch, cudaStream_t stream) {
  MF_CHECK(n >= 0, "grad_sumsq: negative length ", n);
  MF_CHECK(scratch != nullptr, "grad_sumsq: needs ", grad_sumsq_scratch_bytes(n), " bytes of scratch");
  const int64_t blocks = sumsq_blocks(n);
  auto* partials = static_cast<double*>(scratch);
  sumsq_partial_kernel<<<unsigned(blocks), kSumsqThreads, 0, stream>>>(grads, n, aligned(grads, 16), partials);
  check_launch("grad_sumsq");
  sumsq_final_kernel<<<1, kSumsqFinalThreads, 0, stream>>>(partials, blocks, sumsq);
  check_launch("grad_sumsq (final)");
}

void clip_grad_norm_factor(const float* sumsq, float max_norm, float* factor, float* norm, cudaStream_t stream) {
  clip_factor_kernel<<<1, 1, 0, stream>>>(sumsq, max_norm, factor, norm);
  check_launch("clip_grad_norm_factor");
}

void scale_in_place(float* x, int64_t n, const float* factor, cudaStream_t stream) {
  MF_CHECK(factor != nullptr, "scale_in_place: null factor");
  launch_scale(x, n, factor, 1.0f, stream);
}

void scale_in_place(float* x, int64_t n, float factor, cudaStream_t stream) {
  launch_scale(x, n, nullptr, factor, stream);
}

void convert_f32_to_bf16(const float* src, bf16* dst, int64_t n, cudaStream_t stream) {
  MF_CHECK(n >= 0, "convert_f32_to_bf16: negative length ", n);
  if (n == 0) return;
  const bool vec = aligned(src, 16) && aligned(dst, 8);
  convert_kernel<<<grid_for(n, int64_t(kThreads) * 4), kThreads, 0, stream>>>(src, dst, n, vec);
  check_launch("convert_f32_to_bf16");
}

}  // namespace mf::cuda

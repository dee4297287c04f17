// CUDA AdamW (twin of kernels/cpu/adamw.h and train/optimizer.h): one launch updates every
// trainable parameter, each a segment of one contiguous fp32 master buffer with its moments
// beside it (same offsets), and writes the bf16 compute copy; plus the deterministic gradient
// norm, clipping and fp32 -> bf16 conversion. Device pointers unless said otherwise;
// asynchronous on `stream`, no synchronisation, no allocation.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/cuda/device.h"

namespace mf::cuda {

// One parameter (or a piece of one): elements [offset, offset + count) of the master, gradient,
// moment and compute buffers, updated with the hyper-parameters of group `group`.
struct AdamwSegment {
  int64_t offset = 0, count = 0;
  int32_t group = 0;
};

// A parameter group's hyper-parameters for this step. lr is the effective rate (the group's base
// rate times the schedule's multiplier, multiplied in fp32 on the host as AdamW::step does).
struct AdamwGroup {
  float lr = 1e-3f;
  float weight_decay = 0.0f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
};
constexpr int kAdamwMaxGroups = 16;  // groups travel in the kernel's parameters

// The kernel gives one block to each segment (grid-stride), so large tensors are cut into pieces
// of at most max_count elements (a multiple of 4, so 16-byte alignment of a piece follows from its
// tensor's). Build the table once on the host, upload it, reuse it every step.
std::vector<AdamwSegment> split_adamw_segments(std::span<const AdamwSegment> segments, int64_t max_count = 1 << 14);
// Throws mf::Error naming the first segment outside [0, total) or with a group outside
// [0, group_count) (the kernel itself skips such segments rather than touch memory it must not).
void check_adamw_segments(std::span<const AdamwSegment> segments, int64_t total, int group_count);

// For every segment s and i in it, with g = grad[i] * (*grad_scale) (grad_scale nullable: 1):
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   master = master * (1 - lr wd) - lr / (1 - b1^step) * m / (sqrt(v) / sqrt(1 - b2^step) + eps)
// exactly the CPU adamw_update (bias corrections in double on the host, rounded once), and
// compute[i] = bf16(master[i]) when compute is not null (same offsets as master). step: 1-based
// count of updates including this one. grad_scale is the clipping factor of clip_grad_norm_factor
// (folding it here saves a pass over the gradients; the gradients themselves are not modified).
void adamw_update(float* master, const float* grads, float* exp_avg, float* exp_avg_sq, bf16* compute,
                  const AdamwSegment* segments, int64_t segment_count, std::span<const AdamwGroup> groups,
                  int64_t step, const float* grad_scale, cudaStream_t stream);

// *sumsq = sum of x[i]^2 over n elements (squares summed in fp32 four at a time, then in double),
// deterministic: a fixed grid (a function of n only) writes one double per block into scratch and
// one block adds them in order. scratch: grad_sumsq_scratch_bytes(n) bytes.
size_t grad_sumsq_scratch_bytes(int64_t n);
void grad_sumsq(const float* grads, int64_t n, float* sumsq, void* scratch, cudaStream_t stream);

// torch.nn.utils.clip_grad_norm_'s factor from a sum of squares, as the CPU clip_grad_norm:
// norm = sqrt(sumsq); factor = max_norm / (norm + 1e-6) when max_norm > 0, norm is finite and that
// is < 1, else 1. norm (nullable) receives the norm before clipping. One thread, in double.
void clip_grad_norm_factor(const float* sumsq, float max_norm, float* factor, float* norm, cudaStream_t stream);

// x *= factor (read on the device, e.g. from clip_grad_norm_factor), or by a host value.
void scale_in_place(float* x, int64_t n, const float* factor, cudaStream_t stream);
void scale_in_place(float* x, int64_t n, float factor, cudaStream_t stream);

// dst[i] = bf16(src[i]), round to nearest even.
void convert_f32_to_bf16(const float* src, bf16* dst, int64_t n, cudaStream_t stream);

}  // namespace mf::cuda

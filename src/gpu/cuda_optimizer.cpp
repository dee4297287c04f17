#include "gpu/cuda_optimizer.h"

#include <cuda_runtime_api.h>

#include "core/error.h"

namespace mf::gpu {

CudaAdamW::CudaAdamW(ParamStore& params, cuda::Stream& stream, const OptimizerSpec& spec)
    : params_(params), stream_(stream), groups_(spec.groups), betas_(spec.betas) {
  MF_CHECK(!groups_.empty() && groups_.size() <= size_t(cuda::kAdamwMaxGroups), "CUDA AdamW: ", groups_.size(),
           " parameter groups (1 to ", cuda::kAdamwMaxGroups, " supported)");
  std::vector<cuda::AdamwSegment> whole;
  for (const DeviceTensor* d : params_.trainable())
    whole.push_back({d->offset, d->numel, int32_t(spec.group_of(d->name, d->shape))});
  const std::vector<cuda::AdamwSegment> pieces = cuda::split_adamw_segments(whole);
  cuda::check_adamw_segments(pieces, params_.trainable_count(), int(groups_.size()));
  segment_count_ = int64_t(pieces.size());
  segments_ = cuda::DeviceBuffer(std::max<size_t>(pieces.size(), 1) * sizeof(cuda::AdamwSegment), "AdamW segments");
  segments_.upload(pieces.data(), pieces.size() * sizeof(cuda::AdamwSegment));
  norm_scratch_ = cuda::DeviceBuffer(cuda::grad_sumsq_scratch_bytes(params_.trainable_count()), "gradient norm scratch");
  scalars_ = cuda::DeviceBuffer(3 * sizeof(float), "clip scalars");
}

double CudaAdamW::clip_grad_norm(float max_norm) {
  float* s = scalars_.as<float>();
  cuda::grad_sumsq(params_.grads(), params_.trainable_count(), s, norm_scratch_.get(), stream_.get());
  cuda::clip_grad_norm_factor(s, max_norm, s + 1, s + 2, stream_.get());
  float norm = 0;
  cuda::check(cudaMemcpyAsync(&norm, s + 2, 4, cudaMemcpyDeviceToHost, stream_.get()), "gradient norm download");
  stream_.synchronize("gradient norm");
  clip_pending_ = true;
  return double(norm);
}

void CudaAdamW::step(float lr_multiplier) {
  ++step_;
  std::vector<cuda::AdamwGroup> groups;
  for (const ParamGroup& g : groups_)
    groups.push_back({g.lr * lr_multiplier, g.weight_decay, betas_.beta1, betas_.beta2, betas_.eps});
  cuda::adamw_update(params_.master(), params_.grads(), params_.exp_avg(), params_.exp_avg_sq(), params_.compute(),
                     segments_.as<cuda::AdamwSegment>(), segment_count_, groups, step_,
                     clip_pending_ ? scalars_.as<float>() + 1 : nullptr, stream_.get());
  clip_pending_ = false;
}

void CudaAdamW::visit_state(const StateVisitor& visit) {
  stream_.synchronize("optimizer state");
  for (const DeviceTensor* d : params_.trainable()) {
    std::vector<float> value(size_t(d->numel)), m(value.size()), v(value.size());
    download(d->f32, value);
    download(params_.exp_avg() + d->offset, m);
    download(params_.exp_avg_sq() + d->offset, v);
    visit(d->name, value, m, v);
  }
}

void CudaAdamW::restore_state(const StateVisitor& visit) {
  stream_.synchronize("optimizer state");
  for (const DeviceTensor* d : params_.trainable()) {
    std::vector<float> value(size_t(d->numel)), m(value.size()), v(value.size());
    visit(d->name, value, m, v);
    upload(value, d->f32);
    upload(m, params_.exp_avg() + d->offset);
    upload(v, params_.exp_avg_sq() + d->offset);
    cuda::convert_f32_to_bf16(d->f32, d->compute, d->numel, stream_.get());
  }
  stream_.synchronize("optimizer state upload");
}

}  // namespace mf::gpu

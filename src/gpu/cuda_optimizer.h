// AdamW on the GPU over a ParamStore's trainable region: one launch updates every tensor and
// refreshes its bf16 copy; clipping measures the global norm in one reduction and folds the
// clip factor into the update instead of rescaling the gradients in a separate pass.
#pragma once
#include <vector>

#include "gpu/param_store.h"
#include "kernels/cuda/adamw.h"
#include "train/trainable_model.h"

namespace mf::gpu {

class CudaAdamW final : public Optimizer {
 public:
  CudaAdamW(ParamStore& params, cuda::Stream& stream, const OptimizerSpec& spec);

  double clip_grad_norm(float max_norm) override;
  void step(float lr_multiplier) override;
  int64_t steps_taken() const override { return step_; }
  void set_steps_taken(int64_t steps) override { step_ = steps; }
  void visit_state(const StateVisitor& visit) override;
  void restore_state(const StateVisitor& visit) override;

 private:
  ParamStore& params_;
  cuda::Stream& stream_;
  std::vector<ParamGroup> groups_;
  AdamW::Betas betas_;
  cuda::DeviceBuffer segments_;
  int64_t segment_count_ = 0;
  cuda::DeviceBuffer norm_scratch_, scalars_;  // scalars: sumsq, factor, norm
  bool clip_pending_ = false;                  // clip_grad_norm ran since the last step
  int64_t step_ = 0;
};

}  // namespace mf::gpu

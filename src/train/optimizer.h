// AdamW over named fp32 parameters in groups (each group its own learning rate and weight
// decay), global-norm gradient clipping, and the default rule that keeps norms and biases out
// of weight decay. Frozen parameters are simply not handed to the optimizer: they get no state.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "core/trainable_param.h"
#include "kernels/cpu/adamw.h"

namespace mf {

struct ParamGroup {
  std::string name;
  float lr = 1e-3f;            // base learning rate; the schedule multiplies it each step
  float weight_decay = 0.0f;
};

// Norm weights and biases (1-D tensors, or names ending in ".bias" / containing "norm") are
// not decayed, as is usual for transformer training.
bool default_no_decay(const std::string& name, const Shape& shape);

// torch.nn.utils.clip_grad_norm_: the global L2 norm of all gradients (returned, before
// clipping); if it exceeds max_norm (> 0), every gradient is scaled by max_norm / (norm + 1e-6).
// grads are modified through the spans' underlying storage.
double clip_grad_norm(std::span<const std::span<float>> grads, float max_norm);

class AdamW {
 public:
  struct Betas {
    float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f;
  };
  // Throws mf::Error for a group index out of range, a size mismatch, or a duplicate name.
  AdamW(std::vector<ParamGroup> groups, std::vector<TrainableParam> params, Betas betas);

  // One update of every parameter with lr = group.lr * lr_multiplier.
  void step(float lr_multiplier = 1.0f);
  // The update's hyper-parameters for a group at `step` (1-based): the one rule AdamW and the
  // sharded ZeRO-1 optimizer share.
  static AdamWHyper hyper(const ParamGroup& group, const Betas& betas, float lr_multiplier, int64_t step);

  int64_t steps_taken() const { return step_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }
  const std::vector<TrainableParam>& params() const { return params_; }
  // First and second moments of parameter i (for checkpoints).
  std::span<float> exp_avg(size_t i) { return m_[i]; }
  std::span<float> exp_avg_sq(size_t i) { return v_[i]; }
  void set_steps_taken(int64_t steps) { step_ = steps; }

 private:
  std::vector<ParamGroup> groups_;
  std::vector<TrainableParam> params_;
  Betas betas_;
  std::vector<std::vector<float>> m_, v_;
  int64_t step_ = 0;
};

}  // namespace mf

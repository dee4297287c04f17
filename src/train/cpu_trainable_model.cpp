#include "train/trainable_model.h"

namespace mf {

namespace {

class HostAdamW final : public Optimizer {
 public:
  HostAdamW(TrainableTransformer& model, const OptimizerSpec& spec) : model_(model), adam_(make(model, spec)) {}

  double clip_grad_norm(float max_norm) override { return mf::clip_grad_norm(model_.gradients(), max_norm); }
  void step(float lr_multiplier) override { adam_.step(lr_multiplier); }
  int64_t steps_taken() const override { return adam_.steps_taken(); }
  void set_steps_taken(int64_t steps) override { adam_.set_steps_taken(steps); }
  void visit_state(const StateVisitor& visit) override { walk(visit); }
  void restore_state(const StateVisitor& visit) override { walk(visit); }

 private:
  static AdamW make(TrainableTransformer& model, const OptimizerSpec& spec) {
    std::vector<TrainableParam> params = model.trainable_params();
    for (TrainableParam& p : params) p.group = spec.group_of(p.name, model.weights().tensors.at(p.name).shape());
    return AdamW(spec.groups, std::move(params), spec.betas);
  }
  // The host state is the storage itself: visiting and restoring hand out the same spans.
  void walk(const StateVisitor& visit) {
    const auto& params = adam_.params();
    for (size_t i = 0; i < params.size(); ++i) visit(params[i].name, params[i].value, adam_.exp_avg(i), adam_.exp_avg_sq(i));
  }

  TrainableTransformer& model_;
  AdamW adam_;
};

}  // namespace

std::vector<std::string> CpuTrainableModel::trainable_names() const {
  std::vector<std::string> names;
  for (const TrainableParam& p : model_.trainable_params()) names.push_back(p.name);
  return names;
}

std::vector<std::pair<std::string, std::span<float>>> CpuTrainableModel::host_gradients() {
  // trainable_params() and gradients() walk the same tensors in the same (name) order.
  const std::vector<TrainableParam> params = model_.trainable_params();
  const std::vector<std::span<float>> grads = model_.gradients();
  std::vector<std::pair<std::string, std::span<float>>> out;
  for (size_t i = 0; i < params.size(); ++i) out.emplace_back(params[i].name, grads[i]);
  return out;
}

std::unique_ptr<Optimizer> CpuTrainableModel::make_optimizer(const OptimizerSpec& spec) {
  return std::make_unique<HostAdamW>(model_, spec);
}

}  // namespace mf

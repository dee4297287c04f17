// What the trainer needs from a model and its optimizer, whatever device holds them. The CPU
// model (TrainableTransformer) is adapted by CpuTrainableModel; the CUDA model implements these
// directly, keeping weights, gradients and optimizer state on the GPU between steps.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "model/trainable_transformer.h"
#include "train/optimizer.h"

namespace mf {

// AdamW with parameter groups and global-norm clipping over the model's trainable tensors.
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // torch.nn.utils.clip_grad_norm_ over every gradient: the norm before clipping; gradients are
  // scaled by max_norm / (norm + 1e-6) when that is below 1 (max_norm <= 0: measure only).
  virtual double clip_grad_norm(float max_norm) = 0;
  // One update of every trainable tensor with lr = group.lr * lr_multiplier.
  virtual void step(float lr_multiplier) = 0;
  virtual int64_t steps_taken() const = 0;
  virtual void set_steps_taken(int64_t steps) = 0;
  // Checkpoints: each trainable tensor's name, fp32 values and both Adam moments. A device
  // optimizer stages them through host memory; `restore` uploads what the callback wrote. A
  // sharded optimizer (train/sharded_adamw) makes both collective and hands whole moments to
  // rank 0's visit only.
  using StateVisitor = std::function<void(const std::string& name, std::span<float> value, std::span<float> exp_avg,
                                          std::span<float> exp_avg_sq)>;
  virtual void visit_state(const StateVisitor& visit) = 0;    // read
  virtual void restore_state(const StateVisitor& visit) = 0;  // write
};

struct OptimizerSpec {
  std::vector<ParamGroup> groups;
  // The group index of a trainable tensor, from its name and shape.
  std::function<int(const std::string& name, const Shape& shape)> group_of;
  AdamW::Betas betas;
};

class TrainableModel {
 public:
  virtual ~TrainableModel() = default;
  // See TrainableTransformer for the meaning of each call.
  virtual TrainingLoss forward_backward(std::span<const int32_t> tokens, std::span<const int32_t> targets, int batch,
                                        const StepOptions& opts) = 0;
  virtual TrainingLoss evaluate(std::span<const int32_t> tokens, std::span<const int32_t> targets, int batch) = 0;
  virtual const std::vector<RoutingTally>& routing_stats() const = 0;
  virtual void reset_routing_stats() = 0;
  virtual bool update_selection_bias(float rate) = 0;
  // Tensors that change without gradients, as host spans; after writing into them (resume),
  // call buffers_written() so a device model uploads them.
  virtual std::vector<std::pair<std::string, std::span<float>>> buffers() = 0;
  virtual void buffers_written() {}
  virtual void zero_grad() = 0;
  virtual const ModelConfig& config() const = 0;
  // The weights with training applied so far (a device model copies its master weights back).
  virtual const ModelWeights& weights() = 0;
  // Names of the trainable tensors (the others are frozen).
  virtual std::vector<std::string> trainable_names() const = 0;
  virtual std::unique_ptr<Optimizer> make_optimizer(const OptimizerSpec& spec) = 0;
  // "cpu", or the GPU's description.
  virtual std::string device() const = 0;
  // See TrainableTransformer::routers_train_in_forward (a step without backward).
  virtual bool routers_train_in_forward() const { return false; }

  // Data-parallel training (train/data_parallel) sums every rank's gradients between backward and
  // the update, through host memory. A model whose gradients live elsewhere refuses by name.
  // Each trainable tensor's name and writable gradient, in trainable_names() order.
  virtual std::vector<std::pair<std::string, std::span<float>>> host_gradients() {
    fail("distributed training sums gradients in host memory, which the ", device(), " model does not keep; "
         "train with --device cpu under mpirun");
  }
  // Each trainable tensor's name and writable fp32 weights (ZeRO-1 updates a block of them on each
  // rank and all-gathers the rest), in trainable_names() order.
  virtual std::vector<TrainableParam> host_params() {
    fail("a sharded optimizer updates weights in host memory, which the ", device(), " model does not keep; "
         "train with --device cpu under mpirun");
  }
  // Replaces the routing statistics of the step with the whole job's (the balancing rule and the
  // metrics then see every rank's micro-batches).
  virtual void set_routing_stats(std::vector<RoutingTally> tallies) {
    fail("distributed training is not available for the ", device(), " model; train with --device cpu under mpirun");
  }
  // Expert parallelism (dist.expert_parallel): the group the routed experts are split over, or
  // null when every expert is here (then the three calls below are not used).
  virtual ExpertGroup* expert_group() { return nullptr; }
  // See TrainableTransformer.
  virtual void serve_experts() { fail("expert parallelism is not available for the ", device(), " model"); }
  virtual std::vector<std::string> held_expert_tensors() const { return {}; }
  virtual std::vector<TrainableTransformer::RemoteTensor> remote_expert_tensors() const { return {}; }
  virtual void release_remote_experts() {}
};

// The CPU model as a TrainableModel: the optimizer is the host AdamW over its fp32 master copies.
class CpuTrainableModel final : public TrainableModel {
 public:
  explicit CpuTrainableModel(TrainableTransformer& model) : model_(model) {}
  TrainingLoss forward_backward(std::span<const int32_t> tokens, std::span<const int32_t> targets, int batch,
                                const StepOptions& opts) override {
    return model_.forward_backward(tokens, targets, batch, opts);
  }
  TrainingLoss evaluate(std::span<const int32_t> tokens, std::span<const int32_t> targets, int batch) override {
    return model_.evaluate(tokens, targets, batch);
  }
  const std::vector<RoutingTally>& routing_stats() const override { return model_.routing_stats(); }
  void reset_routing_stats() override { model_.reset_routing_stats(); }
  bool update_selection_bias(float rate) override { return model_.update_selection_bias(rate); }
  std::vector<std::pair<std::string, std::span<float>>> buffers() override { return model_.buffers(); }
  void zero_grad() override { model_.zero_grad(); }
  const ModelConfig& config() const override { return model_.config(); }
  const ModelWeights& weights() override { return model_.weights(); }
  std::vector<std::string> trainable_names() const override;
  std::unique_ptr<Optimizer> make_optimizer(const OptimizerSpec& spec) override;
  std::string device() const override { return "cpu"; }
  bool routers_train_in_forward() const override { return model_.routers_train_in_forward(); }
  std::vector<std::pair<std::string, std::span<float>>> host_gradients() override;
  std::vector<TrainableParam> host_params() override { return model_.trainable_params(); }
  void set_routing_stats(std::vector<RoutingTally> tallies) override { model_.set_routing_stats(std::move(tallies)); }
  ExpertGroup* expert_group() override { return model_.expert_group(); }
  void serve_experts() override { model_.serve_experts(); }
  std::vector<std::string> held_expert_tensors() const override { return model_.held_expert_tensors(); }
  std::vector<TrainableTransformer::RemoteTensor> remote_expert_tensors() const override {
    return model_.remote_expert_tensors();
  }
  void release_remote_experts() override { model_.release_remote_experts(); }

 private:
  TrainableTransformer& model_;
};

}  // namespace mf

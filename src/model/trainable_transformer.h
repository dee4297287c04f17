// The CPU training model of the Llama-family decoder (dense and Mixtral-style MoE): the forward
// saves what each layer's backward needs, the backward walks the layers in reverse with the
// blocks' backward passes (model/attention_train, model/ffn_train, model/lm_head_train). Frozen
// tensors keep their stored dtype and get no weight gradient, while gradients still flow
// through them to what trains below.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/trainable_param.h"
#include "model/config.h"
#include "model/expert_parallel_ffn.h"
#include "model/training.h"
#include "model/weights.h"
#include "moe/routing_stats.h"

namespace mf {

class TrainableTransformer {
 public:
  // frozen(name) says which HF tensors do not train. Trainable tensors become fp32 master
  // copies with a zeroed gradient buffer; frozen ones stay as stored (quantized is fine).
  // experts: expert parallelism (dist.expert_parallel; must outlive the model): this rank runs
  // only the routed experts its group rank holds, for every rank of the group; the others are
  // never read here (no fp32 copy, gradient or optimizer state; a memory-mapped one is never paged
  // in). Null: every expert here.
  // Throws mf::Error for what training does not support yet (sliding windows, shared experts),
  // and when the experts of a layer do not split evenly over the group.
  TrainableTransformer(ModelWeights weights, const std::function<bool(const std::string&)>& frozen,
                       ExpertGroup* experts = nullptr);
  ~TrainableTransformer();
  TrainableTransformer(TrainableTransformer&&) noexcept;
  TrainableTransformer& operator=(TrainableTransformer&&) noexcept;

  // tokens, targets: [batch, T] row-major, each row a sequence from position 0; a target < 0
  // is a position without loss (prompt, padding), also left out of the routers' aux losses.
  // Adds to the gradient buffers the gradient of
  //   grad_scale * (lm_sum / loss_tokens + lb_coef * lb + z_coef * z + domain_coef * domain)
  // and returns the parts.
  TrainingLoss forward_backward(std::span<const int32_t> tokens, std::span<const int32_t> targets, int batch,
                                const StepOptions& opts = {});
  // The same forward and loss parts, no gradients (evaluation).
  TrainingLoss evaluate(std::span<const int32_t> tokens, std::span<const int32_t> targets, int batch);
  // Expert parallelism: the evaluation forward of a rank that has no batch of its own this round,
  // which still runs its experts for the other ranks of its group (the exchanges are collective).
  void serve_experts();
  ExpertGroup* expert_group() const;
  // Expert parallelism: the trainable routed-expert tensors held here, and those held by other
  // ranks of the group (each with its group rank), in name order.
  struct RemoteTensor {
    std::string name;
    int holder = 0;
  };
  std::vector<std::string> held_expert_tensors() const;
  std::vector<RemoteTensor> remote_expert_tensors() const;
  // Drops this process's copies of the trainable experts other ranks hold (from-scratch weights
  // live in memory; a file's stay mapped but unread): called once the job's starting state is
  // shared out. The tensors keep their shapes and have no storage after it.
  void release_remote_experts();
  // Routing statistics of each MoE layer summed over the training forwards since the last
  // reset (evaluation does not count): load, drops, capacity, entropy, aux losses.
  const std::vector<RoutingTally>& routing_stats() const;
  void reset_routing_stats();
  // Replaces them (a data-parallel step: the whole job's statistics, summed over its ranks).
  // Throws mf::Error if the count of MoE layers differs.
  void set_routing_stats(std::vector<RoutingTally> tallies);
  // Auxiliary-loss-free balancing (DeepSeek-V3): every router with a selection bias moves
  // each expert's bias by `rate` towards balance, +rate if the expert took fewer rows than
  // the layer's mean since the last reset, -rate if more. Returns false if no layer has one.
  bool update_selection_bias(float rate);
  // Tensors that change without gradients (selection biases): name and values, for checkpoints.
  std::vector<std::pair<std::string, std::span<float>>> buffers();

  // True when only routers train and their gates are constant (top-1 renormalised): a training
  // step then adds each router's aux-loss gradient during the forward and runs no backward, with
  // the same gradients as the full backward (the LM loss gives such routers none).
  bool routers_train_in_forward() const;

  void zero_grad();
  // Every trainable tensor: its name, fp32 values and gradient (for the optimizer).
  std::vector<TrainableParam> trainable_params();
  // Every gradient buffer, writable (clipping scales them in place).
  std::vector<std::span<float>> gradients();
  // The gradient of a trainable tensor, or null if it is frozen or unknown.
  const std::vector<float>* grad(const std::string& name) const;

  const ModelConfig& config() const;
  const ModelWeights& weights() const;

 private:
  TrainingLoss run(std::span<const int32_t> tokens, std::span<const int32_t> targets, int batch,
                   const StepOptions& opts, bool backward);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mf

// The training model on an NVIDIA GPU: the same Llama-family decoder (dense and MoE) and the
// same TrainableModel contract as the CPU's TrainableTransformer, in mixed precision: bf16
// weights and activations for the GEMMs and attention, fp32 residual stream, master weights,
// gradients, optimizer state, norms, router math and losses. Activations live in one device
// arena reserved up front (no cudaMalloc in the step loop). Experts run as grouped GEMMs over
// the dispatch plan's per-expert row counts.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "train/trainable_model.h"

namespace mf::gpu {

struct CudaDeviceOptions {
  int device = 0;
  // Device memory reserved for one step's activations and scratch; 0: sized from the free
  // memory after the weights are placed (most of it, leaving headroom for cuBLAS).
  size_t arena_bytes = 0;
};

class CudaTrainableModel final : public TrainableModel {
 public:
  // Throws mf::Error when no GPU is usable, when the model uses what the CUDA path does not
  // implement yet (named), or when the weights do not fit (asked and free bytes).
  CudaTrainableModel(ModelWeights weights, const std::function<bool(const std::string&)>& frozen,
                     CudaDeviceOptions options = {});
  ~CudaTrainableModel() override;
  CudaTrainableModel(const CudaTrainableModel&) = delete;
  CudaTrainableModel& operator=(const CudaTrainableModel&) = delete;

  TrainingLoss forward_backward(std::span<const int32_t> tokens, std::span<const int32_t> targets, int batch,
                                const StepOptions& opts) override;
  TrainingLoss evaluate(std::span<const int32_t> tokens, std::span<const int32_t> targets, int batch) override;
  const std::vector<RoutingTally>& routing_stats() const override;
  void reset_routing_stats() override;
  bool update_selection_bias(float rate) override;
  std::vector<std::pair<std::string, std::span<float>>> buffers() override;
  void buffers_written() override;
  void zero_grad() override;
  const ModelConfig& config() const override;
  const ModelWeights& weights() override;
  std::vector<std::string> trainable_names() const override;
  std::unique_ptr<Optimizer> make_optimizer(const OptimizerSpec& spec) override;
  std::string device() const override;

  // The gradient of a trainable tensor copied to the host (tests), or empty if frozen.
  std::vector<float> grad(const std::string& name) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// What the CUDA training path cannot run yet for this model, or "" when it can.
std::string cuda_training_unsupported(const ModelConfig& c);

}  // namespace mf::gpu

// What one training step of a decoder takes and gives back, whatever the device: the options of
// a forward/backward call, the loss parts it returns, and the shape rule of its inputs.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/weights.h"
#include "core/trainable_param.h"
#include "moe/routing_stats.h"

namespace mf {

struct StepOptions {
  float lb_coef = 0.0f;      // load-balancing loss coefficient (per MoE layer, summed)
  float z_coef = 0.0f;       // router z-loss coefficient (per MoE layer, summed)
  int64_t loss_tokens = 0;   // divides the summed LM loss; 0: the tokens counted in this call
  float grad_scale = 1.0f;   // multiplies every gradient (e.g. 1 / accumulation steps)
  bool lb_per_sequence = false;  // balance loss within each sequence instead of over the batch
  // Router supervision from domain labels (train.router_domain_coef; CPU model only): [N] the
  // expert each token's sequence belongs to, -1 for none (the trainer sets answer tokens only).
  // The loss, per MoE layer and summed, pulls each sequence's mean routing distribution towards
  // that expert (kernels/cpu/router.h domain_routing_loss). Empty or a zero coef: off.
  float domain_coef = 0.0f;
  std::span<const int32_t> route_targets;
  bool domain_per_token = false;  // train.router_domain_scope: token (each answer token on its own)
  // Seeds the Gaussian noise of noisy top-k routers (with the layer): a step's noise is a
  // function of the step, so a resumed run draws the same noise.
  uint64_t noise_seed = 0;
  // Activation recomputation (train.recompute; HF's gradient checkpointing, per layer): the
  // forward keeps only each layer's input, and the backward runs each layer's forward again just
  // before its backward. Same gradients, bit for bit; memory of one layer's activations instead
  // of all of them, for about one more forward pass of time.
  bool recompute = false;
  // Called during backward each time a part of the model (model/grad_parts.h: the head, each
  // layer from the last, the embedding) has all of this call's gradient, in part order. On a
  // step's last micro-batch that part's gradient is final, so a data-parallel trainer starts
  // sending it while backward goes on. Null: not called.
  std::function<void(int part)> on_grads_done;
};

struct TrainingLoss {
  double lm_sum = 0;         // summed cross-entropy over counted positions
  int64_t lm_tokens = 0;     // positions with a target >= 0
  double lb = 0;             // sum over MoE layers of the load-balancing loss
  double z = 0;              // sum over MoE layers of the router z-loss
  double domain = 0;         // sum over MoE layers of the domain routing loss (0 when off)
  double lm() const { return lm_tokens ? lm_sum / double(lm_tokens) : 0.0; }
};

// The shape rule of every training call, on either device: tokens split into `batch` equal
// rows, one target per token. Throws mf::Error saying which part is wrong.
void check_training_batch(std::span<const int32_t> tokens, std::span<const int32_t> targets, int batch);

}  // namespace mf

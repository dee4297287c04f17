// One MoE FFN on the GPU (twin of model/moe_ffn.h), forward and backward side by side: router
// (plus noisy top-k's noise projection in training), top-k gates, the balance and z aux losses,
// the dispatch plan with the CPU's order and capacity rule, the experts as grouped GEMMs over
// permuted rows, the gated combine, and an optional shared expert. Training and inference run
// the same forward; inference keeps nothing (its caller rewinds the arena after each layer).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "gpu/device_step.h"
#include "gpu/layer_binding.h"
#include "gpu/swiglu.h"
#include "kernels/cuda/moe_dispatch.h"
#include "model/config.h"

namespace mf::gpu {

// How a forward routes: training (noise, the training capacity, kept for a backward) or not, and
// over which rows the aux losses are taken.
struct MoeFfnPass {
  bool training = false;
  const uint8_t* counted = nullptr;  // device [N]: rows in the aux losses; null: no aux losses
  int batch = 1;                     // sequences in the N rows
  bool per_sequence = false;         // balance loss per sequence (then averaged), not per batch
  std::span<const float> gaussian;   // host [N, E]: noisy top-k's draws while training
};

// The aux losses' coefficients in the backward (before the gradient scale).
struct MoeLossCoefs {
  float lb = 0.0f, z = 0.0f, grad_scale = 1.0f;
};

// What the forward leaves (arena memory of the current call, plus the host offsets).
struct MoeSaved {
  float *logits = nullptr, *probs = nullptr, *gates = nullptr;
  // [lb, z] over the batch, then with a per-sequence scope [lb, z] of each sequence (the balance
  // loss is the mean of the sequences' ones; z stays over the batch).
  float* aux = nullptr;
  float *noise_logits = nullptr, *selection = nullptr, *gaussian = nullptr;  // noisy top-k in training
  int32_t* index = nullptr;
  cuda::DispatchPlanView plan;
  std::vector<int32_t> offsets;  // host copy of plan.offsets (the grouped GEMM's sizes)
  int64_t rows = 0;              // routed rows kept (offsets[E])
  bf16 *xp = nullptr, *gate_up = nullptr, *product = nullptr, *yp = nullptr;  // per routed row
  SwigluSaved shared;                       // shared expert
  bf16* shared_out = nullptr;               // [N, H]
  float* shared_logits = nullptr;           // [N] when the shared expert is gated
};

// Slots each token fills: 1 under Switch, else top_k.
int moe_slots(const ModelConfig& c);
// Floats of aux results the forward writes per layer.
size_t moe_aux_floats(const MoeFfnPass& pass);

// x_out [N, H] fp32 += moe(h [N, H]). Waits once for the dispatch plan's sizes (the grouped GEMM
// takes them on the host).
void moe_ffn_forward(DeviceStep& d, const ModelConfig& c, const GpuLayer& L, const bf16* h, int64_t N,
                     const MoeFfnPass& pass, float* x_out, MoeSaved& S);

// From dy = d x_out [N, H] fp32: dh [N, H] fp32 (written) is d h; weight gradients accumulate
// into the layer's buffers, and the aux losses' gradients reach the router.
void moe_ffn_backward(DeviceStep& d, const ModelConfig& c, const GpuLayer& L, const bf16* h, int64_t N,
                      const MoeFfnPass& pass, const MoeLossCoefs& coefs, const MoeSaved& S, const float* dy,
                      float* dh);

}  // namespace mf::gpu

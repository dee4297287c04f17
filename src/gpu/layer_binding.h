// The tensors of one decoder layer on the device, bound by role once: what the CUDA training
// model and the CUDA inference model both run (the GPU's counterpart of the CPU's
// bind_weights in model/layer_weights.h).
#pragma once
#include <cstdint>
#include <vector>

#include "gpu/param_store.h"
#include "model/config.h"

namespace mf::gpu {

// A SwiGLU MLP whose gate and up projections sit side by side: `gate_up` is the gate tensor,
// and its bf16 copy (and gradient, when it trains) run on as the [2I, H] matrix [gate; up].
struct SwigluBinding {
  const DeviceTensor* gate_up = nullptr;  // null: absent (no shared expert)
  const DeviceTensor* down = nullptr;
  int64_t inter = 0;  // I
};

// The experts of one MoE layer as the grouped GEMMs take them: per-expert pointer tables.
struct ExpertTable {
  int count = 0;
  int64_t inter = 0;                           // I of every expert
  std::vector<const bf16*> gate_up_w, down_w;  // expert e's [2I, H] and [H, I] (bf16)
  std::vector<float*> gate_up_g, down_g;       // their gradients (null: frozen)
};

struct GpuLayer {
  const DeviceTensor *attn_norm = nullptr, *ffn_norm = nullptr;
  const DeviceTensor *q = nullptr, *k = nullptr, *v = nullptr, *o = nullptr;
  const DeviceTensor *q_bias = nullptr, *k_bias = nullptr, *v_bias = nullptr, *o_bias = nullptr;  // null: none
  bool moe = false;
  SwigluBinding mlp;  // dense layers
  // MoE layers
  const DeviceTensor *router = nullptr, *selection_bias = nullptr;  // selection bias: null when none
  const DeviceTensor* noise = nullptr;                              // noisy top-k's W_noise; else null
  ExpertTable experts;
  SwigluBinding shared;                         // Qwen2-MoE's shared expert (gate_up null: none)
  const DeviceTensor* shared_gate = nullptr;    // its [1, H] sigmoid gate; null: ungated
};

// Throws mf::Error naming a missing tensor, or gate/up projections that are not side by side.
GpuLayer bind_layer(const ParamStore& params, const ModelConfig& c, int layer);

}  // namespace mf::gpu

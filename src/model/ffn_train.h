// Training forward and backward of one FFN block on the CPU, x_out = x_mid + ffn(rmsnorm(x_mid)),
// where ffn is the layer's SwiGLU MLP (model/swiglu.h) or its MoE FFN (model/moe_ffn.h).
// Inference's version is ffn_block (model/blocks.h), over the same two FFN implementations.
#pragma once
#include <cstdint>
#include <vector>

#include "model/attention_train.h"
#include "model/moe_ffn.h"
#include "model/swiglu.h"

namespace mf {

// Gradient buffers of one FFN block (null: frozen).
struct FfnGrads {
  float* norm = nullptr;
  SwigluGrads mlp;  // dense layers
  MoeGrads moe;     // MoE layers
};

struct FfnActs {
  std::vector<float> x_mid, h2;  // block input and its norm [N, H]
  SwigluActs mlp;                // dense layers
  MoeActs moe;                   // MoE layers
};

struct FfnScratch {
  std::vector<float> out, dmid, dh;  // [N, H], [N, I], [N, H]
  std::vector<float> gaussian;       // noisy top-k draws of one layer
  MoeScratch moe;
};

// How the step routes: training (noise, training capacity, keep activations) or evaluation.
struct FfnPass {
  bool training = false;
  uint64_t noise_seed = 0;  // StepOptions::noise_seed
  const uint8_t* counted = nullptr;  // [N] rows with a target: the only ones in the aux losses
  MoeLossOptions losses;             // coefficients already times the gradient scale
  ExpertGroup* experts = nullptr;    // expert parallel: the group the routed experts are split over
};

// x [N, H] becomes x_out in place. Returns the MoE layer's aux losses (zero for dense layers).
MoeAuxLosses ffn_train_forward(const ModelConfig& c, const LayerWeights& L, int layer, const SequenceBatch& sb,
                               const FfnPass& pass, float* x, FfnActs& A, FfnScratch& s);

// dx [N, H] holds d x_out on entry and d x_mid on return; weight gradients are accumulated into g
// (and the aux losses' gradients, with pass.losses' coefficients, reach the router).
void ffn_train_backward(const ModelConfig& c, const LayerWeights& L, const FfnGrads& g, const SequenceBatch& sb,
                        const FfnPass& pass, FfnActs& A, float* dx, FfnScratch& s);

// The router's gradient from the aux losses of the last ffn_train_forward alone (nothing for a
// dense layer): the whole router gradient where the gates are constant (router_gates_are_constant).
void ffn_train_router_aux_backward(const ModelConfig& c, const LayerWeights& L, const FfnGrads& g,
                                   const SequenceBatch& sb, const FfnPass& pass, const FfnActs& A, FfnScratch& s);

}  // namespace mf

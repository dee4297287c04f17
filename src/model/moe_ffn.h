// One MoE FFN on the CPU under every routing policy, for inference and training alike: router
// (plus the noise projection of noisy top-k), routing with capacity, sparse dispatch over the
// experts, gated combine, an optional shared expert; the auxiliary losses (load balancing per
// batch or per sequence, router z-loss) and the backward beside the forward. Inference calls the
// forward with training = false and keep = false: no noise, the evaluation capacity, nothing kept
// for a backward. The whole-layer gradients
// are checked against PyTorch in tests/reference/test_routing.cpp.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "model/config.h"
#include "model/expert_parallel_ffn.h"
#include "model/swiglu.h"
#include "moe/routing.h"
#include "moe/routing_stats.h"

namespace mf {

// Gradient buffers of one MoE FFN (null: frozen).
struct MoeGrads {
  float* router = nullptr;
  float* noise = nullptr;
  std::vector<SwigluGrads> experts;
  SwigluGrads shared;
  float* shared_gate = nullptr;
};

// What the forward keeps for the backward (buffers reused across steps and, in inference,
// across layers). Without `keep` the SwiGLU products are not kept (ffn.h, shared.h unused).
struct MoeActs {
  std::vector<float> logits;        // [N, E] clean router logits
  std::vector<float> noise_logits;  // noisy_topk while training: [N, E] W_noise h
  std::vector<float> gaussian;      // noisy_topk while training: [N, E] the N(0, 1) draws
  std::vector<float> selection;     // [N, E] the logits routed (noisy ones while training)
  RouteOptions options;
  Routing routing;
  DispatchPlan plan;
  std::vector<float> gathered, out;  // [rows, H]
  SwigluActs ffn;                    // every routed row, in plan order
  ExpertExchangeActs exchange;       // expert parallel: the experts ran on the ranks holding them
  SwigluActs shared;                 // [N, S]
  std::vector<float> shared_out, shared_gate;  // [N, H]; [N] gate pre-activations
  std::vector<SwigluJob> expert_jobs;          // scratch: the experts this pass routed rows to
  bool noisy = false;
};

struct MoeLossOptions {
  float lb_coef = 0.0f, z_coef = 0.0f;  // already multiplied by any gradient scale
  bool lb_per_sequence = false;         // balance within each sequence (DeepSeek) instead of the batch
  int batch = 1;                        // sequences in the N rows (for per-sequence balance)
  // Router supervision from domain labels (kernels/cpu/router.h domain_routing_loss): [N] the
  // expert each row's sequence should route to, -1 for none; null or a zero coef: off.
  float domain_coef = 0.0f;
  const int32_t* route_targets = nullptr;
  bool domain_per_token = false;  // each target row on its own instead of each record's mean
};

// y[N, H] += moe(h[N, H]). gaussian: [N, E] standard normal draws for noisy_topk while training
// (ignored otherwise; must be given then). Training uses the training capacity factor. `keep`
// keeps what moe_ffn_backward needs; either way A.logits / A.routing describe the pass (for aux
// losses and observers). experts: the expert-parallel group the experts are split over (training
// under mpirun with dist.expert_parallel > 1; model/expert_parallel_ffn); null: all run here.
void moe_ffn_forward(const ModelConfig& c, const MoeWeights& w, const float* h, int64_t N, bool training,
                     std::span<const float> gaussian, MoeActs& A, float* y, bool keep = true,
                     ExpertGroup* experts = nullptr);

// The aux losses of the last forward over the counted rows (null: all), before coefficients.
struct MoeAuxLosses {
  double lb = 0, z = 0, domain = 0;
};
MoeAuxLosses moe_aux_losses(const MoeActs& A, const uint8_t* counted, const MoeLossOptions& o);

// Backward from dy[N, H]: dh[N, H] is written, weight gradients are accumulated into g, and the
// aux losses' gradients (with o's coefficients) reach the router. scratch is reused. experts: the
// forward's expert-parallel group.
struct MoeScratch {
  std::vector<float> dout, dgate, dmid, dgathered, dlogits, dnoise, dshared, dshared_mid, dshared_gate;
};
void moe_ffn_backward(const ModelConfig& c, const MoeWeights& w, const MoeGrads& g, MoeActs& A, const float* h,
                      const float* dy, int64_t N, const uint8_t* counted, const MoeLossOptions& o, MoeScratch& s,
                      float* dh, ExpertGroup* experts = nullptr);

// True when the routers' gates are constant: one slot renormalised over itself (Mixtral's
// softmax top-1, or top-1-then-softmax) and no noise. The LM loss then gives the router no
// gradient at all (d gate / d logits = 0), only the aux losses do.
bool router_gates_are_constant(const ModelConfig& c);
// The router's weight gradient from the aux losses alone (o's coefficients), from the last
// forward's logits and routing and the router input h[N, H]: with constant gates that is its
// whole gradient, so a routers-only training step needs no backward (model/trainable_transformer).
void moe_router_aux_backward(const MoeGrads& g, const MoeActs& A, const float* h, int64_t N, int64_t H,
                             const uint8_t* counted, const MoeLossOptions& o, MoeScratch& s);

}  // namespace mf

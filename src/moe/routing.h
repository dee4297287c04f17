// Routing: from router logits to (token, expert, gate) assignments under every policy of
// RoutingConfig, with expert capacity and token dropping; and the backward pass from the
// gates' gradients to the logits' gradients. The experts themselves are not here: the MoE FFN
// (model/moe_ffn.h) runs them over the dispatch plan built from a Routing.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/cpu/moe_dispatch.h"
#include "moe/routing_config.h"

namespace mf {

struct RouteOptions {
  RouterPolicy policy = RouterPolicy::SoftmaxTopK;
  int top_k = 1;
  bool renormalize = true;        // softmax_topk only
  double capacity_factor = 0.0;   // as RoutingConfig (0: dropless / expert choice: top_k)
  int min_capacity = 0;
  // Added to the selection scores only, never to the gates (DeepSeek-V3's auxiliary-loss-free
  // balancing): to probabilities for softmax_topk / switch, to logits for topk_softmax /
  // noisy_topk. [E] or null. Not used by expert choice, which balances by construction.
  const float* selection_bias = nullptr;
};

RouteOptions route_options(const RoutingConfig& c, int top_k, bool training, const float* selection_bias = nullptr);

// One routing decision over N tokens. Assignment a is
//   token choice:  a = t * slots + s, token t's s-th choice (best first), slots = k;
//   expert choice: a = e * slots + j, expert e's j-th token (best first), slots = capacity.
struct Routing {
  int64_t tokens = 0;
  int experts = 0;
  int slots = 0;
  bool expert_choice = false;
  int64_t capacity = 0;            // routed rows each expert may take; 0: unlimited
  std::vector<int32_t> token, expert;
  std::vector<float> gate;         // weight of the expert's output in the token's FFN output
  std::vector<uint8_t> kept;       // 0: over capacity; the slot adds nothing (residual only)
  std::vector<float> probs;        // [N, E] softmax of the logits (what softmax gates are read from)
  int64_t dropped = 0;             // assignments over capacity (token choice)

  int64_t assignments() const { return int64_t(token.size()); }
  // Tokens that no kept assignment reaches (expert choice: picked by no expert).
  int64_t unrouted_tokens() const;
  // Kept rows per expert.
  std::vector<int64_t> load() const;
};

// The capacity the options give for N tokens and E experts (0: unlimited).
int64_t expert_capacity(const RouteOptions& o, int64_t N, int E);

// Fills r from logits [N, E]. Ties go to the lower expert (token choice) or the earlier token
// (expert choice). Throws mf::Error on a NaN logit or bad options.
void route(const float* logits, int64_t N, int E, const RouteOptions& o, Routing& r);

// dlogits [N, E] += the gradient of the gates given dgate [assignments] (entries of dropped
// assignments are ignored). Selection is not differentiable; the selection bias takes no part.
void route_backward(const float* logits, const Routing& r, const RouteOptions& o, const float* dgate, float* dlogits);

// The kept assignments grouped by expert for sparse dispatch; plan.source[row] is the
// assignment index, so moe_scatter_add_backward writes gate gradients in assignment order.
DispatchPlan plan_dispatch(const Routing& r);

}  // namespace mf

// MoE routing: which experts each token goes to, and with what gate weight.
#pragma once
#include <cstdint>

namespace mf {

// Mixtral routing: softmax over each token's E router logits, keep the k largest
// probabilities (ties -> lower expert index first), optionally renormalise the k weights to
// sum to 1. logits: [T, E]; idx, weight: [T, k], sorted by descending weight.
void router_topk_softmax(const float* logits, int64_t T, int E, int k, bool renormalize,
                         int32_t* idx, float* weight);

// Backward of router_topk_softmax for the chosen idx: from the gradient of the k gate weights
// dweight [T, k], the gradient of the router logits, added into dlogits [T, E]. The selection
// itself is not differentiable; gradients reach the logits through the softmax (and the
// renormalisation when it was applied).
void router_topk_softmax_backward(const float* logits, const int32_t* idx, const float* dweight, int64_t T, int E,
                                  int k, bool renormalize, float* dlogits);

// Auxiliary router losses over the rows whose mask is non-zero (mask may be null: all rows);
// both add coef * (their gradient) into dlogits [T, E] when dlogits is non-null and return the
// loss (before coef).
//
// Load balancing (Switch / Mixtral, as HF's load_balancing_loss_func): with P_e the mean
// softmax probability of expert e over the counted rows and f_e the number of top-k slots
// routed to e divided by the number of counted rows, loss = E * sum_e f_e * P_e. The gradient
// flows through P only.
double load_balancing_loss(const float* logits, const int32_t* idx, const uint8_t* mask, int64_t T, int E, int k,
                           float coef, float* dlogits);
// Router z-loss (ST-MoE): mean over counted rows of logsumexp(logits)^2.
double router_z_loss(const float* logits, const uint8_t* mask, int64_t T, int E, float coef, float* dlogits);

}  // namespace mf

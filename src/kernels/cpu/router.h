// MoE routing: which experts each token goes to, and with what gate weight.
#pragma once
#include <cstdint>

namespace mf {

// Mixtral routing: softmax over each token's E router logits, keep the k largest
// probabilities (ties -> lower expert index first), optionally renormalise the k weights to
// sum to 1. logits: [T, E]; idx, weight: [T, k], sorted by descending weight.
void router_topk_softmax(const float* logits, int64_t T, int E, int k, bool renormalize,
                         int32_t* idx, float* weight);

}  // namespace mf

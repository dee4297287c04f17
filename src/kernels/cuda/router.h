// CUDA router (twin of the token-choice policies of moe/routing.h and of kernels/cpu/router.h):
// fused softmax + top-k + gates, their backward, the balance and z auxiliary losses, and
// per-expert counts. Pointers are device memory; every function only enqueues work on `stream`
// (no synchronisation, no allocation: scratch comes from the caller, sized by the *_bytes
// queries) and throws mf::Error on bad arguments or a failed launch.
//
// Numerics follow the CPU code: each row's softmax, the top-k scores and the gates are computed
// in double and rounded to float once, so indices match the CPU exactly (ties to the lower
// expert) and gates/probabilities agree to the last bit or one ulp. Every reduction has a fixed
// order (no float atomics), so results are bit-reproducible run to run.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/device.h"

namespace mf::cuda {

// One warp routes one row: each lane holds experts lane, lane + 32, ... (at most 8 of them).
inline constexpr int kRouterMaxExperts = 256;
inline constexpr int kRouterMaxTopK = 8;

// How the kernel turns a row of logits into k gates: the order of softmax and top-k that each
// token-choice mf::RouterPolicy implies (gpu/model_layout's topk_gating maps one to the other).
// Noisy top-k is TopKSoftmax over the noisy logits (the caller adds the noise); expert choice is
// not here.
enum class TopKGating {
  SoftmaxTopK,  // softmax over all E, top k by prob (+bias), gates = picked probs (renormalised if asked)
  TopKSoftmax,  // top k by logit (+bias), gates = softmax over the k picked logits
  Switch,       // top-1 by prob (+bias), gate = that prob, never renormalised; top_k must be 1
};

// logits [rows, E] fp32 -> probs [rows, E] = softmax(logits) (may be null when not needed),
// expert_index [rows, top_k] best first, gates [rows, top_k]. selection_bias [E] (nullable) is
// added to the selection scores only (probabilities for SoftmaxTopK / Switch, logits for
// TopKSoftmax), never to the gates. `renormalize` applies to SoftmaxTopK only.
// Needs 1 <= E <= 256 and 1 <= top_k <= min(8, E); Switch needs top_k == 1 (the CPU's Routing
// has one slot under switch whatever the config's top_k).
void router_topk_forward(const float* logits, int64_t rows, int experts, int top_k, TopKGating kind, bool renormalize,
                         const float* selection_bias, float* probs, int32_t* expert_index, float* gates,
                         cudaStream_t stream);

// dlogits [rows, E] is WRITTEN (not accumulated) with d(sum_s dgates[t,s] * gates[t,s]) /
// d logits, as mf::route_backward computes it. probs [rows, E] (from the forward) is read by
// SoftmaxTopK and Switch and may be null for TopKSoftmax. row_of_slot [rows, top_k] (nullable;
// DispatchPlanView::row_of_slot): slots with a negative entry were dropped by capacity and their
// dgates are ignored, like the CPU's kept == 0. The selection bias takes no part.
void router_topk_backward(const float* probs, const int32_t* expert_index, const float* gates, const float* dgates,
                          const int32_t* row_of_slot, int64_t rows, int experts, int top_k, TopKGating kind,
                          bool renormalize, float* dlogits, cudaStream_t stream);

// Scratch for router_aux_forward / router_aux_backward (256-byte aligned is enough).
size_t router_aux_scratch_bytes(int64_t rows, int experts);

// The auxiliary losses of kernels/cpu/router.h over the rows whose `counted` flag is non-zero
// (counted [rows] may be null: every row): out[0] = load-balancing loss E * sum_e f_e P_e
// (f_e = top-k slots routed to e / counted rows, P_e = mean softmax probability), out[1] =
// z-loss (mean of logsumexp^2). Both 0 when no row is counted. expert_index [rows, top_k] is
// every choice, dropped or not (as the CPU trainer passes Routing::expert). The softmax is
// recomputed from the logits in double, so no probs are needed. Indices outside [0, E) are
// not counted. Balance over the whole batch only: a per-sequence scope is one call per
// sequence with offset pointers.
void router_aux_forward(const float* logits, const int32_t* expert_index, int64_t rows, int experts, int top_k,
                        const uint8_t* counted, float* out, void* scratch, cudaStream_t stream);

// dlogits [rows, E] += grad_scale * (lb_coef * d lb / d logits + z_coef * d z / d logits)
// (counted rows only; the balance gradient flows through P only, as on the CPU).
void router_aux_backward(const float* logits, const int32_t* expert_index, int64_t rows, int experts, int top_k,
                         const uint8_t* counted, float lb_coef, float z_coef, float grad_scale, float* dlogits,
                         void* scratch, cudaStream_t stream);

// counts [E] (written) = top-k slots routed to each expert over the counted rows (counted
// nullable: all), only the kept ones when row_of_slot [rows, top_k] is given (nullable).
// Integer atomics only, so the result does not depend on scheduling.
void router_expert_counts(const int32_t* expert_index, const int32_t* row_of_slot, const uint8_t* counted,
                          int64_t rows, int top_k, int experts, int32_t* counts, cudaStream_t stream);

// Noisy top-k (Shazeer et al. 2017) in training: selection logits
//   selection = logits + gaussian * softplus(noise_logits)
// over n elements (gaussian: the step's N(0, 1) draws, made on the host from the same seed as
// the CPU's). The top-k and gates are then TopKSoftmax over the selection logits.
void noisy_logits_forward(const float* logits, const float* noise_logits, const float* gaussian, float* selection,
                          int64_t n, cudaStream_t stream);
// Its backward to the noise projection's output: dnoise = dselection * gaussian * sigmoid(noise_logits)
// (written); the clean logits' gradient is dselection itself.
void noisy_logits_backward(const float* dselection, const float* noise_logits, const float* gaussian,
                           float* dnoise_logits, int64_t n, cudaStream_t stream);

}  // namespace mf::cuda

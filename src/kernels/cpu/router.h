// The routers' auxiliary losses (the routing itself is src/moe/routing.h).
#pragma once
#include <cstdint>

namespace mf {

// Auxiliary router losses over the rows whose mask is non-zero (mask may be null: all rows);
// both add coef * (their gradient) into dlogits [N, E] when dlogits is non-null and return the
// loss (before coef).
//
// Load balancing (Switch / Mixtral, as HF's load_balancing_loss_func): with P_e the mean
// softmax probability of expert e over the counted rows and f_e the number of top-k slots
// routed to e divided by the number of counted rows, loss = E * sum_e f_e * P_e. The gradient
// flows through P only.
double load_balancing_loss(const float* logits, const int32_t* idx, const uint8_t* mask, int64_t N, int E, int k,
                           float coef, float* dlogits);
// Router z-loss (ST-MoE): mean over counted rows of logsumexp(logits)^2.
double router_z_loss(const float* logits, const uint8_t* mask, int64_t N, int E, float coef, float* dlogits);
// Domain routing loss (router supervision from domain labels): the rows come in sequences of T;
// within a sequence, the rows whose target is expert e (target[t] = e, -1: none) form a segment,
// and the loss is the mean over every segment of -log(mean over its rows of softmax(logits)[e]):
// the sequence's mean routing distribution is pulled towards its domain's expert, while single
// tokens may still go elsewhere. per_token instead takes the mean over the target rows of
// -log softmax(logits)[target]: every token is pulled, the ones routed elsewhere most. Returns
// the loss (before coef); adds coef * its gradient into dlogits [N, E] when non-null. target
// values must be < E.
double domain_routing_loss(const float* logits, const int32_t* target, int64_t N, int E, int64_t T, float coef,
                           float* dlogits, bool per_token = false);

}  // namespace mf

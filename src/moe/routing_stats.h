// Routing statistics of one MoE layer, summed over forward passes (the micro-batches of an
// optimizer step) and read as the per-layer figures in metrics.jsonl: tokens per expert, the
// coefficient of variation of that load, router entropy, drop rate, share of capacity used,
// and the aux losses.
#pragma once
#include <cstdint>
#include <vector>

#include "moe/routing.h"

namespace mf {

// What one forward pass's routing did, as counts: every statistic but the entropy comes from
// these. The CPU reads them off a Routing; a device path fills them from its dispatch plan.
struct RoutingCounts {
  std::vector<int64_t> load;      // kept rows per expert
  int64_t assignments = 0;        // routed slots offered
  int64_t dropped = 0;            // slots over capacity
  int64_t tokens = 0, unrouted = 0;  // tokens seen; tokens no kept slot reached
  int64_t capacity = 0;           // rows each expert may take; 0: unlimited
  bool expert_choice = false;
};
RoutingCounts routing_counts(const Routing& r);

struct RoutingTally {
  std::vector<int64_t> load;      // kept rows per expert
  int64_t assignments = 0;        // routed slots offered (token choice: tokens * k)
  int64_t dropped = 0;            // slots over capacity
  int64_t tokens = 0, unrouted = 0;  // tokens seen; tokens no kept slot reached
  int64_t capacity_slots = 0;     // experts * capacity, summed (0 while capacity is unlimited)
  double entropy_sum = 0;         // routing entropy (nats) summed over counted tokens
  int64_t entropy_tokens = 0;
  double lb_sum = 0, z_sum = 0;   // aux losses (before coefficients), summed over passes
  int passes = 0;
  bool expert_choice = false;

  // Adds one forward pass: its routing, the router's clean logits [T, E] and which tokens are
  // scored (null: all) for the entropy.
  void add(const Routing& r, const float* logits, const uint8_t* counted);
  void add(const RoutingCounts& counts, const float* logits, const uint8_t* counted);
  void add_losses(double lb, double z);
  void reset() { *this = RoutingTally{}; }

  double load_cv() const;         // std / mean of the per-expert load (0: perfectly even)
  double entropy() const;         // mean routing entropy per counted token
  double drop_rate() const;       // dropped / offered slots (expert choice: unrouted tokens / tokens)
  double capacity_used() const;   // kept rows / capacity slots; 0 when unlimited
  double lb() const { return passes ? lb_sum / passes : 0.0; }
  double z() const { return passes ? z_sum / passes : 0.0; }
};

// Auxiliary-loss-free balancing (DeepSeek-V3): moves each expert's selection bias [E] by `rate`
// towards balance, +rate if the expert took fewer rows than the layer's mean in `tally`, -rate
// if more. Does nothing when the tally has no load yet.
void update_selection_bias(const RoutingTally& tally, float rate, float* bias);

}  // namespace mf

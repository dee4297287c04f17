#include "moe/routing_stats.h"

#include "kernels/cpu/softmax.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace mf {

RoutingCounts routing_counts(const Routing& r) {
  RoutingCounts n;
  n.load = r.load();
  n.assignments = r.assignments();
  n.dropped = r.dropped;
  n.tokens = r.tokens;
  n.unrouted = r.unrouted_tokens();
  n.capacity = r.capacity;
  n.expert_choice = r.expert_choice;
  return n;
}

void RoutingTally::add(const Routing& r, const float* logits, const uint8_t* counted) {
  add(routing_counts(r), logits, counted);
}

void RoutingTally::add(const RoutingCounts& r, const float* logits, const uint8_t* counted) {
  const int E = int(r.load.size());
  if (load.size() != size_t(E)) load.assign(size_t(E), 0);
  for (int e = 0; e < E; ++e) load[size_t(e)] += r.load[size_t(e)];
  expert_choice = r.expert_choice;
  assignments += r.assignments;
  dropped += r.dropped;
  tokens += r.tokens;
  unrouted += r.unrouted;
  capacity_slots += r.capacity * E;
  std::vector<double> p(static_cast<size_t>(E));
  for (int64_t t = 0; t < r.tokens; ++t) {
    if (counted && !counted[t]) continue;
    softmax_row_f64(logits + t * E, E, p.data());
    double h = 0;
    for (double q : p)
      if (q > 0) h -= q * std::log(q);
    entropy_sum += h;
    ++entropy_tokens;
  }
}

void RoutingTally::add_losses(double lb, double z) {
  lb_sum += lb;
  z_sum += z;
  ++passes;
}

double RoutingTally::load_cv() const {
  if (load.empty()) return 0.0;
  const double mean = double(std::accumulate(load.begin(), load.end(), int64_t(0))) / double(load.size());
  if (mean == 0) return 0.0;
  double var = 0;
  for (int64_t n : load) var += (double(n) - mean) * (double(n) - mean);
  return std::sqrt(var / double(load.size())) / mean;
}

double RoutingTally::entropy() const { return entropy_tokens ? entropy_sum / double(entropy_tokens) : 0.0; }

double RoutingTally::drop_rate() const {
  if (expert_choice) return tokens ? double(unrouted) / double(tokens) : 0.0;
  return assignments ? double(dropped) / double(assignments) : 0.0;
}

double RoutingTally::capacity_used() const {
  if (capacity_slots == 0) return 0.0;
  return double(std::accumulate(load.begin(), load.end(), int64_t(0))) / double(capacity_slots);
}

void update_selection_bias(const RoutingTally& tally, float rate, float* bias) {
  if (tally.load.empty()) return;
  double mean = 0;
  for (int64_t n : tally.load) mean += double(n);
  mean /= double(tally.load.size());
  for (size_t e = 0; e < tally.load.size(); ++e) {
    const double n = double(tally.load[e]);
    bias[e] += n < mean ? rate : (n > mean ? -rate : 0.0f);
  }
}

}  // namespace mf

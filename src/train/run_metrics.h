// A training run's metrics.jsonl as series over steps, for the run report (moeforge plot):
// scalar keys as (step, value) points, per-layer lists (router entropy, load CV, drop rate,
// capacity used) as their mean and extreme layer, and expert_load as shares per layer.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace mf {

using Points = std::vector<std::pair<double, double>>;  // (step, value)

struct LayerSummary {
  Points mean, min, max;  // over the MoE layers at each logged step
};

struct RunMetrics {
  std::map<std::string, Points> scalars;          // loss, valid_loss, lr, grad_norm, lb_loss, z_loss, ...
  std::map<std::string, LayerSummary> per_layer;  // router_entropy, load_cv, drop_rate, capacity_used
  std::vector<double> load_steps;                 // steps that logged expert_load
  std::vector<std::vector<std::vector<double>>> load;  // [layer][logged step][expert]: share of routed slots

  const Points& scalar(const std::string& key) const;        // empty when never logged
  const LayerSummary* layers(const std::string& key) const;  // null when never logged
};

// Throws mf::Error naming file:line for a malformed line or a record without "step".
RunMetrics read_run_metrics(const std::string& metrics_jsonl);

}  // namespace mf

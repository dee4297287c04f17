#include "train/run_metrics.h"

#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace mf {

namespace {

// Numbers the trainer logs per step; anything else numeric is kept too (future keys plot
// without a change here), but these are the ones the report draws.
void add_scalars(const nlohmann::json& j, double step, RunMetrics& m) {
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.key() != "step" && it->is_number()) m.scalars[it.key()].emplace_back(step, it->get<double>());
}

void add_per_layer(const nlohmann::json& j, double step, RunMetrics& m) {
  for (const char* key : {"router_entropy", "load_cv", "drop_rate", "capacity_used"}) {
    if (!j.contains(key) || !j[key].is_array() || j[key].empty()) continue;
    double sum = 0, lo = 0, hi = 0;
    bool first = true;
    for (const auto& v : j[key]) {
      if (!v.is_number()) continue;
      const double x = v.get<double>();
      sum += x;
      lo = first ? x : std::min(lo, x);
      hi = first ? x : std::max(hi, x);
      first = false;
    }
    if (first) continue;
    LayerSummary& s = m.per_layer[key];
    s.mean.emplace_back(step, sum / double(j[key].size()));
    s.min.emplace_back(step, lo);
    s.max.emplace_back(step, hi);
  }
}

void add_expert_load(const nlohmann::json& j, double step, const std::string& where, RunMetrics& m) {
  if (!j.contains("expert_load")) return;
  const auto& layers = j["expert_load"];
  MF_CHECK(layers.is_array(), where, ": expert_load must be a list of per-layer counts");
  if (m.load.size() < layers.size()) m.load.resize(layers.size());
  m.load_steps.push_back(step);
  for (size_t l = 0; l < layers.size(); ++l) {
    MF_CHECK(layers[l].is_array(), where, ": expert_load[", l, "] must be a list of counts");
    std::vector<double> shares = layers[l].get<std::vector<double>>();
    double total = 0;
    for (double c : shares) total += c;
    for (double& c : shares) c = total > 0 ? c / total : 0;
    // A layer that logged nothing before this step is padded so columns stay aligned with load_steps.
    m.load[l].resize(m.load_steps.size() - 1);
    m.load[l].push_back(std::move(shares));
  }
}

}  // namespace

const Points& RunMetrics::scalar(const std::string& key) const {
  static const Points kNone;
  const auto it = scalars.find(key);
  return it == scalars.end() ? kNone : it->second;
}

const LayerSummary* RunMetrics::layers(const std::string& key) const {
  const auto it = per_layer.find(key);
  return it == per_layer.end() ? nullptr : &it->second;
}

RunMetrics read_run_metrics(const std::string& metrics_jsonl) {
  std::ifstream in(metrics_jsonl);
  MF_CHECK(in, metrics_jsonl, ": cannot open the run's metrics");
  RunMetrics m;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    const std::string where = cat(metrics_jsonl, ":", n);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail(where, ": malformed JSON (", e.what(), ")");
    }
    MF_CHECK(j.is_object() && j.contains("step") && j["step"].is_number(), where,
             ": a metrics record needs a numeric \"step\"");
    const double step = j["step"].get<double>();
    try {
      add_scalars(j, step, m);
      add_per_layer(j, step, m);
      add_expert_load(j, step, where, m);
    } catch (const nlohmann::json::exception& e) {
      fail(where, ": unexpected value (", e.what(), ")");
    }
  }
  for (auto& layer : m.load) layer.resize(m.load_steps.size());  // layers absent at the end: padded
  return m;
}

}  // namespace mf

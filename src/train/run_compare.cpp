#include "train/run_compare.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/json_file.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "model/config_json.h"

namespace mf {
namespace fs = std::filesystem;

namespace {

std::string describe_routing(const ModelConfig& c) {
  if (!c.is_moe()) return "dense";
  const RoutingConfig& r = c.routing;
  std::ostringstream o;
  o << router_policy_name(r.policy);
  if (r.policy != RouterPolicy::ExpertChoice) o << " k=" << c.top_k;
  if (r.policy == RouterPolicy::SoftmaxTopK && !r.norm_topk_prob) o << " no-renorm";
  if (r.capacity_factor > 0) o << " cap " << r.capacity_factor;
  if (c.shared_expert_intermediate_size > 0) o << " +shared";
  if (c.router_selection_bias) o << " +bias";
  if (!c.layer_experts.empty()) o << " pyramid";
  int dense = 0;
  for (int l = 0; l < c.num_layers; ++l) dense += !c.layer_is_moe(l);
  if (dense > 0) o << " +" << dense << " dense";
  return o.str();
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / double(v.size());
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

}  // namespace

RunRow read_run(const std::string& dir) {
  RunRow row;
  row.name = fs::path(dir).filename().string();
  if (row.name.empty()) row.name = fs::path(dir).parent_path().filename().string();
  const fs::path summary_path = fs::path(dir) / "summary.json";
  MF_CHECK(fs::exists(summary_path), summary_path.string(), ": no summary (is the run finished?)");
  const nlohmann::json s = read_json_file(summary_path.string());
  row.steps = s.value("steps", int64_t(0));
  row.valid_loss = s.value("valid_loss", 0.0);
  row.best_valid_loss = s.value("best_valid_loss", row.valid_loss);
  row.tokens_per_s = s.value("tokens_per_s", 0.0);
  row.wall_s = s.value("wall_s", 0.0);
  const fs::path config = fs::path(dir) / "model" / "config.json";
  if (fs::exists(config)) {
    const ModelConfig c = load_hf_config(config.string());
    row.routing = describe_routing(c);
    row.parameters = count_parameters(c, false);
    row.active_parameters = count_parameters(c, true);
  }
  // Routing figures: the last quarter of the logged steps, averaged over layers.
  std::ifstream in(fs::path(dir) / "metrics.jsonl");
  std::vector<nlohmann::json> records;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    try {
      records.push_back(nlohmann::json::parse(line));
    } catch (const nlohmann::json::exception& e) {
      fail((fs::path(dir) / "metrics.jsonl").string(), ":", n, ": malformed JSON (", e.what(), ")");
    }
  }
  std::vector<double> cv, drop, entropy;
  for (size_t i = records.size() - records.size() / 4 - (records.size() % 4 ? 1 : 0); i < records.size(); ++i) {
    const nlohmann::json& r = records[i];
    auto layers_mean = [&](const char* key, std::vector<double>& out) {
      if (r.contains(key) && r[key].is_array() && !r[key].empty()) out.push_back(mean(r[key].get<std::vector<double>>()));
    };
    layers_mean("load_cv", cv);
    layers_mean("drop_rate", drop);
    layers_mean("router_entropy", entropy);
  }
  row.has_routing = !cv.empty();
  row.load_cv = mean(cv);
  row.drop_rate = mean(drop);
  row.entropy = mean(entropy);
  return row;
}

std::string format_runs_table(const std::vector<RunRow>& rows, bool markdown) {
  const std::vector<std::string> head = {"run", "routing", "steps", "valid loss", "best", "tokens/s", "minutes",
                                         "params (active)", "load CV", "drop rate", "router entropy"};
  std::vector<std::vector<std::string>> cells;
  for (const RunRow& r : rows) {
    auto routing_cell = [&](double v, int d) { return r.has_routing ? fixed(v, d) : std::string("-"); };
    cells.push_back({r.name, r.routing, std::to_string(r.steps), fixed(r.valid_loss, 4), fixed(r.best_valid_loss, 4),
                     fixed(r.tokens_per_s, 0), fixed(r.wall_s / 60.0, 1),
                     fixed(double(r.parameters) / 1e6, 2) + "M (" + fixed(double(r.active_parameters) / 1e6, 2) + "M)",
                     routing_cell(r.load_cv, 3), routing_cell(r.drop_rate, 3), routing_cell(r.entropy, 3)});
  }
  std::ostringstream o;
  if (markdown) {
    auto md_row = [&](const std::vector<std::string>& v) {
      o << "|";
      for (const std::string& c : v) o << " " << c << " |";
      o << "\n";
    };
    md_row(head);
    o << "|";
    for (size_t i = 0; i < head.size(); ++i) o << (i < 2 ? "---|" : "---:|");
    o << "\n";
    for (const auto& c : cells) md_row(c);
    return o.str();
  }
  std::vector<size_t> width(head.size());
  for (size_t i = 0; i < head.size(); ++i) width[i] = head[i].size();
  for (const auto& c : cells)
    for (size_t i = 0; i < c.size(); ++i) width[i] = std::max(width[i], c[i].size());
  auto text_row = [&](const std::vector<std::string>& v) {
    for (size_t i = 0; i < v.size(); ++i) {
      const size_t pad = width[i] - v[i].size();
      if (i < 2) o << v[i] << std::string(pad, ' ');
      else o << std::string(pad, ' ') << v[i];
      o << (i + 1 < v.size() ? "  " : "\n");
    }
  };
  text_row(head);
  for (const auto& c : cells) text_row(c);
  return o.str();
}

}  // namespace mf

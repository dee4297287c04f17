// Reading finished training runs side by side (moeforge compare): each run directory's
// summary.json, metrics.jsonl and model/config.json become one row of a table of validation
// loss, speed and routing balance. Used for the routing-policy comparison in docs/routing.md.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mf {

struct RunRow {
  std::string name;            // the run directory's name
  std::string routing;         // e.g. "noisy_topk k=2 cap 1", "dense"
  int64_t steps = 0;
  double valid_loss = 0, best_valid_loss = 0;
  double tokens_per_s = 0, wall_s = 0;
  int64_t parameters = 0, active_parameters = 0;
  // Mean over MoE layers and the last quarter of the logged steps (absent for dense runs).
  bool has_routing = false;
  double load_cv = 0, drop_rate = 0, entropy = 0;
};

// Throws mf::Error naming the file when the run is incomplete (no summary.json: still running
// or failed) or a file is malformed.
RunRow read_run(const std::string& dir);

// A fixed-width text table, or a Markdown table.
std::string format_runs_table(const std::vector<RunRow>& rows, bool markdown);

}  // namespace mf

// A run's metrics (metrics.jsonl) as one self-contained HTML page: loss curves (train and
// validation), learning rate, gradient norm, aux losses, and per-layer expert load over time.
#pragma once
#include <string>

namespace mf {

// Reads the run's metrics file; throws mf::Error naming file:line for a malformed line.
std::string render_run_report(const std::string& metrics_jsonl, const std::string& title);

}  // namespace mf

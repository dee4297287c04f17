// Training runs' metrics (metrics.jsonl) as one self-contained HTML page of inline SVG charts
// (moeforge plot): loss (train and validation), learning rate, gradient norm (log scale), each
// aux loss on its own axes, throughput, routing statistics, and per-layer expert load heatmaps
// with a colour scale. Several runs overlay on the same charts, one colour per run.
#pragma once
#include <string>
#include <vector>

#include "train/run_info.h"
#include "train/run_metrics.h"

namespace mf {

struct ReportRun {
  RunInfo info;
  RunMetrics metrics;
};

// The page for one or more runs; the title names the run(s), their recipe, model size and date.
std::string render_run_report(const std::vector<ReportRun>& runs);

// Reads each directory's metrics.jsonl and run info (read_run_metrics, read_run_info).
std::vector<ReportRun> read_report_runs(const std::vector<std::string>& run_dirs);

// One run from its metrics file alone, titled `title` (no summary or config read).
std::string render_run_report(const std::string& metrics_jsonl, const std::string& title);

}  // namespace mf

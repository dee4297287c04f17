// What a run report's title says about a run: its name, recipe, model size and routing, and when
// it last logged. Read from the run directory's summary.json (written when a run finishes) and
// model/config.json (or best/config.json); a run still going has neither and says so.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mf {

struct RunInfo {
  std::string name;             // the run directory's name
  std::string recipe;           // the recipe file's name; empty when unknown
  std::string model;            // "mixtral, 2 layers, hidden 32"; empty without a config
  int64_t parameters = 0, active_parameters = 0;
  std::string routing;          // describe_moe(): "softmax_topk, top-2 of 4, ..."; empty for dense
  std::vector<std::string> expert_names;  // from the config; empty when it has none
  std::string date;             // "2026-12-06 07:58 UTC": when metrics.jsonl was last written
  bool finished = false;        // summary.json exists
};

// Never throws for missing optional files; throws mf::Error for a malformed summary or config.
RunInfo read_run_info(const std::string& run_dir);

// One line for a title: "recipe tiny.yaml · 1.20M parameters (0.61M active) · mixtral, ... · 2026-12-06 07:58 UTC".
std::string describe_run(const RunInfo& info);

// "1.20M", "35.1K", "2.30B".
std::string format_count(int64_t n);

}  // namespace mf

// GET /metrics in Prometheus' text exposition format (version 0.0.4): the server's request
// counters and the engine's totals, and for a MoE each layer's expert load since start.
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "serve/batch_engine.h"

namespace mf {

// Requests answered, by endpoint and HTTP status; thread-safe (HTTP handlers run on many threads).
class RequestCounters {
 public:
  void count(const std::string& endpoint, int status);
  std::map<std::pair<std::string, int>, int64_t> snapshot() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, int64_t> counts_;
};

// A MoE's routed experts packed for decode (kernels/cpu/packed_on_demand.h), as /metrics shows them.
struct ExpertCopiesStats {
  int64_t made = 0, dropped = 0;
  size_t resident_bytes = 0, budget_bytes = 0;  // budget 0: no limit
};

struct MetricsInput {
  EngineStats engine;
  std::optional<ExpertCopiesStats> expert_copies;  // a MoE with packed experts only
  std::map<std::pair<std::string, int>, int64_t> requests;
  std::vector<std::string> expert_names;   // for the expert label; "expertN" where missing
  double uptime_seconds = 0;
};

std::string prometheus_metrics(const MetricsInput& in);

}  // namespace mf

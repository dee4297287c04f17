// GET /metrics in Prometheus' text exposition format (version 0.0.4): the server's request
// counters and the engine's totals, and for a MoE each layer's expert load since start.
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
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

struct MetricsInput {
  EngineStats engine;
  std::map<std::pair<std::string, int>, int64_t> requests;
  std::vector<std::string> expert_names;   // for the expert label; "expertN" where missing
  double uptime_seconds = 0;
};

std::string prometheus_metrics(const MetricsInput& in);

}  // namespace mf

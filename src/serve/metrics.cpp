#include "serve/metrics.h"

#include <sstream>

namespace mf {

void RequestCounters::count(const std::string& endpoint, int status) {
  std::lock_guard lock(mutex_);
  ++counts_[{endpoint, status}];
}

std::map<std::pair<std::string, int>, int64_t> RequestCounters::snapshot() const {
  std::lock_guard lock(mutex_);
  return counts_;
}

namespace {

// Label values escape backslash, double quote and newline (the exposition format's rule).
std::string label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void header(std::ostringstream& o, const char* name, const char* type, const char* help) {
  o << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
}

// One unlabelled metric: its HELP and TYPE lines and its value.
template <typename T>
void metric(std::ostringstream& o, const char* name, const char* type, const char* help, T value) {
  header(o, name, type, help);
  o << name << ' ' << value << '\n';
}

double per_second(double count, double seconds) { return seconds > 0 ? count / seconds : 0.0; }

}  // namespace

std::string prometheus_metrics(const MetricsInput& in) {
  const EngineStats& e = in.engine;
  std::ostringstream o;
  o.precision(10);
  header(o, "moeforge_requests_total", "counter", "HTTP requests answered, by endpoint and status.");
  for (const auto& [key, n] : in.requests)
    o << "moeforge_requests_total{endpoint=\"" << label(key.first) << "\",status=\"" << key.second << "\"} " << n << '\n';
  metric(o, "moeforge_prompt_tokens_total", "counter", "Prompt tokens of the sequences admitted.", e.prompt_tokens);
  metric(o, "moeforge_prefilled_tokens_total", "counter",
         "Prompt tokens computed (the rest came from the prompt cache).", e.prefilled_tokens);
  metric(o, "moeforge_generated_tokens_total", "counter", "Tokens generated.", e.generated_tokens);
  metric(o, "moeforge_sequences_finished_total", "counter", "Sequences finished, cancelled or failed.",
         e.sequences_finished);
  metric(o, "moeforge_sequences_cancelled_total", "counter",
         "Sequences cancelled: the client went away or the request ran past --timeout.", e.sequences_cancelled);
  metric(o, "moeforge_decode_steps_total", "counter", "Batched decode steps.", e.decode_steps);
  metric(o, "moeforge_forward_passes_total", "counter",
         "Forward passes: decode steps (prompt chunks ride along when they fit) and prompt chunks run alone.",
         e.forward_passes);
  metric(o, "moeforge_queue_depth", "gauge", "Requests waiting for a slot.", e.queued);
  metric(o, "moeforge_active_slots", "gauge", "Slots serving a sequence.", e.active);
  metric(o, "moeforge_slots", "gauge", "Slots (--parallel).", e.parallel);
  metric(o, "moeforge_decode_tokens_per_second", "gauge", "Generated tokens per second of decode time since start.",
         per_second(double(e.generated_tokens), e.decode_seconds));
  metric(o, "moeforge_prefill_tokens_per_second", "gauge", "Prompt tokens per second of prefill time since start.",
         per_second(double(e.prefilled_tokens), e.prefill_seconds));
  metric(o, "moeforge_uptime_seconds", "gauge", "Seconds since the server started.", in.uptime_seconds);
  if (const auto& c = in.expert_copies) {
    metric(o, "moeforge_expert_copies_made_total", "counter",
           "Routed experts' matrices packed for decode, packings again after a drop included.", c->made);
    metric(o, "moeforge_expert_copies_dropped_total", "counter",
           "Packed expert matrices dropped to stay within --expert-cache.", c->dropped);
    metric(o, "moeforge_expert_copies_bytes", "gauge", "Bytes the packed expert matrices take now.",
           c->resident_bytes);
    metric(o, "moeforge_expert_cache_budget_bytes", "gauge", "--expert-cache in bytes (0: no limit).",
           c->budget_bytes);
  }
  if (!e.moe_layers.empty()) {
    header(o, "moeforge_expert_selections_total", "counter",
           "Router top-k selections per MoE layer and expert, over every token that produced logits.");
    for (size_t m = 0; m < e.moe_layers.size() && m < e.expert_load.size(); ++m)
      for (size_t x = 0; x < e.expert_load[m].size(); ++x) {
        const std::string name = x < in.expert_names.size() ? in.expert_names[x] : "expert" + std::to_string(x);
        o << "moeforge_expert_selections_total{layer=\"" << e.moe_layers[m] << "\",expert=\"" << label(name) << "\"} "
          << e.expert_load[m][x] << '\n';
      }
  }
  return o.str();
}

}  // namespace mf

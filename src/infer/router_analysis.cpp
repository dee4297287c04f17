// Each sequence runs one full forward with a fresh KV cache and the router logits captured. The
// dataset tally takes the argmax of the logits (the softmax's argmax too); the reports are plain
// text tables and one HTML page with inline styles, nothing to fetch.
#include "infer/router_analysis.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <sstream>

#include "core/error.h"
#include "kernels/cpu/softmax.h"
#include "model/kv_cache.h"

namespace mf {

namespace {

std::vector<std::string> expert_names(const ModelConfig& c) {
  std::vector<std::string> names = c.expert_names;
  for (int e = int(names.size()); e < c.num_experts; ++e) names.push_back("expert" + std::to_string(e));
  return names;
}

std::vector<Tensor> router_logits_of(Transformer& model, std::span<const int32_t> ids) {
  const ModelConfig& c = model.config();
  MF_CHECK(c.is_moe(), "router analysis: the model is dense (no experts to route to)");
  MF_CHECK(!ids.empty(), "router analysis: no tokens");
  KVCache cache(c, int(ids.size()));
  std::vector<Tensor> logits;
  ForwardOptions fo;
  fo.router_logits = &logits;
  model.forward(ids, 1, cache, fo);
  return logits;
}

std::string lower(std::string s) {
  for (char& ch : s) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

std::string escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == '<') out += "&lt;";
    else if (ch == '>') out += "&gt;";
    else if (ch == '&') out += "&amp;";
    else out += ch;
  }
  return out;
}

std::string pct(double v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100.0 * v);
  return buf;
}

// Rows normalised to shares of the row total.
std::vector<std::vector<double>> shares(const std::vector<std::vector<int64_t>>& counts) {
  std::vector<std::vector<double>> out;
  for (const auto& row : counts) {
    const double total = double(std::accumulate(row.begin(), row.end(), int64_t(0)));
    std::vector<double> r;
    for (int64_t v : row) r.push_back(total > 0 ? double(v) / total : 0.0);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace

PromptRoutes route_prompt(Transformer& model, std::span<const int32_t> ids, int top) {
  const ModelConfig& c = model.config();
  const std::vector<Tensor> logits = router_logits_of(model, ids);
  PromptRoutes out;
  out.expert_names = expert_names(c);
  std::vector<int> moe_layers;
  for (int l = 0; l < c.num_layers; ++l)
    if (c.layer_is_moe(l)) moe_layers.push_back(l);
  std::vector<float> p;
  for (size_t i = 0; i < logits.size(); ++i) {
    LayerRoutes lr;
    lr.layer = moe_layers[i];
    const int E = int(logits[i].dim(1));  // experts of this layer (a pyramid MoE has fewer in some)
    const int kept = std::clamp(top, 1, E);
    lr.share.assign(size_t(c.num_experts), 0.0);
    const int64_t T = logits[i].dim(0);
    for (int64_t t = 0; t < T; ++t) {
      const float* z = logits[i].data<float>() + t * E;
      p.assign(z, z + E);
      softmax_row(p.data(), E);
      std::vector<int> order(static_cast<size_t>(E));
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[size_t(a)] > p[size_t(b)]; });
      TokenRoute tr;
      for (int j = 0; j < kept; ++j) {
        tr.experts.push_back(order[size_t(j)]);
        tr.probs.push_back(p[size_t(order[size_t(j)])]);
      }
      lr.tokens.push_back(std::move(tr));
      for (int e = 0; e < E; ++e) lr.share[size_t(e)] += p[size_t(e)] / double(T);
    }
    out.layers.push_back(std::move(lr));
  }
  return out;
}

double RoutingMatrix::dispatch_accuracy(size_t domain) const {
  const std::string name = lower(domains[domain]);
  for (size_t e = 0; e < experts.size(); ++e) {
    if (lower(experts[e]) != name) continue;
    const auto& row = overall[domain];
    const double total = double(std::accumulate(row.begin(), row.end(), int64_t(0)));
    return total > 0 ? double(row[e]) / total : 0.0;
  }
  return -1.0;
}

RoutingMatrix route_dataset(Transformer& model, const std::vector<LabelledSequence>& data,
                            const std::vector<std::string>& domains, const std::function<void(size_t, size_t)>& progress) {
  const ModelConfig& c = model.config();
  RoutingMatrix m;
  m.domains = domains;
  m.experts = expert_names(c);
  for (int l = 0; l < c.num_layers; ++l)
    if (c.layer_is_moe(l)) m.layers.push_back(l);
  const size_t D = domains.size(), E = size_t(c.num_experts);
  m.counts.assign(m.layers.size(), std::vector<std::vector<int64_t>>(D, std::vector<int64_t>(E, 0)));
  m.overall.assign(D, std::vector<int64_t>(E, 0));
  for (size_t i = 0; i < data.size(); ++i) {
    const LabelledSequence& s = data[i];
    MF_CHECK(s.domain >= 0 && size_t(s.domain) < D, "route_dataset: domain index ", s.domain, " out of range");
    MF_CHECK(s.counted.size() == s.tokens.size(), "route_dataset: mask and tokens differ in length");
    const std::vector<Tensor> logits = router_logits_of(model, s.tokens);
    for (size_t li = 0; li < logits.size(); ++li) {
      const float* z = logits[li].data<float>();
      const size_t E = size_t(logits[li].dim(1));
      for (size_t t = 0; t < s.tokens.size(); ++t) {
        if (!s.counted[t]) continue;
        const float* row = z + t * E;
        const size_t best = size_t(std::max_element(row, row + E) - row);
        ++m.counts[li][size_t(s.domain)][best];
        ++m.overall[size_t(s.domain)][best];
      }
    }
    if (progress) progress(i + 1, data.size());
  }
  return m;
}

std::string routing_matrix_table(const RoutingMatrix& m, bool per_layer) {
  std::ostringstream o;
  auto table = [&](const std::string& title, const std::vector<std::vector<int64_t>>& counts, bool accuracy) {
    const auto sh = shares(counts);
    o << title << " (share of each domain's tokens whose top-1 expert is the column)\n";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%-14s", "domain");
    o << buf;
    for (const auto& e : m.experts) {
      std::snprintf(buf, sizeof buf, " %9.9s", e.c_str());
      o << buf;
    }
    if (accuracy) o << "   dispatch";
    o << "\n";
    for (size_t d = 0; d < m.domains.size(); ++d) {
      std::snprintf(buf, sizeof buf, "%-14.14s", m.domains[d].c_str());
      o << buf;
      for (double v : sh[d]) {
        std::snprintf(buf, sizeof buf, " %9s", pct(v).c_str());
        o << buf;
      }
      if (accuracy) {
        const double a = m.dispatch_accuracy(d);
        std::snprintf(buf, sizeof buf, "   %8s", a < 0 ? "-" : pct(a).c_str());
        o << buf;
      }
      o << "\n";
    }
    o << "\n";
  };
  table("all layers", m.overall, true);
  if (per_layer)
    for (size_t li = 0; li < m.layers.size(); ++li) table("layer " + std::to_string(m.layers[li]), m.counts[li], false);
  return o.str();
}

std::string routing_matrix_html(const RoutingMatrix& m, const std::string& title) {
  std::ostringstream o;
  o << "<!doctype html><html><head><meta charset='utf-8'><title>" << escape(title)
    << "</title><style>body{font-family:sans-serif;margin:24px}table{border-collapse:collapse;margin:8px 0 24px}"
       "td,th{padding:4px 8px;text-align:right;font-size:13px}th{background:#f3f3f3}"
       ".grid{display:flex;flex-wrap:wrap;gap:24px}</style></head><body><h1>"
    << escape(title) << "</h1><p>Share of each domain's tokens whose top-1 expert is the column. "
    << "Darker is more.</p>";
  auto heatmap = [&](const std::string& caption, const std::vector<std::vector<int64_t>>& counts, bool accuracy) {
    const auto sh = shares(counts);
    o << "<div><h3>" << escape(caption) << "</h3><table><tr><th>domain</th>";
    for (const auto& e : m.experts) o << "<th>" << escape(e) << "</th>";
    if (accuracy) o << "<th>dispatch accuracy</th>";
    o << "</tr>";
    for (size_t d = 0; d < m.domains.size(); ++d) {
      o << "<tr><th>" << escape(m.domains[d]) << "</th>";
      for (double v : sh[d]) {
        const int shade = int(255 - 200 * v);
        o << "<td style='background:rgb(" << shade << "," << shade << ",255);color:" << (v > 0.55 ? "#fff" : "#000")
          << "'>" << pct(v) << "</td>";
      }
      if (accuracy) {
        const double a = m.dispatch_accuracy(d);
        o << "<td>" << (a < 0 ? "-" : pct(a)) << "</td>";
      }
      o << "</tr>";
    }
    o << "</table></div>";
  };
  heatmap("all layers", m.overall, true);
  o << "<div class='grid'>";
  for (size_t li = 0; li < m.layers.size(); ++li) heatmap("layer " + std::to_string(m.layers[li]), m.counts[li], false);
  o << "</div></body></html>\n";
  return o.str();
}

}  // namespace mf

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
#include "data/sft_record.h"
#include "kernels/cpu/softmax.h"
#include "model/kv_cache.h"
#include "report/color_scale.h"
#include "report/html_text.h"

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
  const int e = expert_of_domain(domains[domain], experts);
  if (e < 0) return -1.0;
  const auto& row = overall[domain];
  const double total = double(std::accumulate(row.begin(), row.end(), int64_t(0)));
  return total > 0 ? double(row[size_t(e)]) / total : 0.0;
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
  o << "dispatch = dispatch accuracy: the share of a domain's tokens whose top-1 expert is named after the domain\n"
       "(about 1/E for random routing; '-' when no expert has the domain's name)\n\n";
  if (per_layer)
    for (size_t li = 0; li < m.layers.size(); ++li) table("layer " + std::to_string(m.layers[li]), m.counts[li], false);
  return o.str();
}

std::string routing_matrix_html(const RoutingMatrix& m, const std::string& title) {
  // One colour scale for every table (0% white to 100% dark blue), drawn once with numbers.
  const ColorScale scale{ColorScale::Kind::Sequential, 0.0, 0.5, 1.0};
  std::vector<ColorTick> ticks;
  for (int p = 0; p <= 100; p += 25) ticks.push_back({p / 100.0, std::to_string(p) + "%"});
  std::ostringstream o;
  o << "<!doctype html><html><head><meta charset='utf-8'><title>" << html_escape(title)
    << "</title><style>body{font-family:system-ui,sans-serif;margin:24px;max-width:1100px;color:#222}"
       "table{border-collapse:collapse;margin:8px 0 24px}td,th{padding:4px 8px;text-align:right;font-size:13px}"
       "th{background:#f3f3f3}td.accuracy{font-weight:600;border-left:2px solid #ccc}"
       ".grid{display:flex;flex-wrap:wrap;gap:24px}.explain{max-width:760px;line-height:1.45}</style></head><body><h1>"
    << html_escape(title) << "</h1><p class='explain'>Each row is a domain of the labelled data; each column an "
    << "expert. A cell is the share of that domain's counted tokens (the answer tokens) whose <b>top-1 expert</b> "
    << "(the router's highest-probability choice) is the column's expert, so every row adds up to 100%. "
    << "&ldquo;All layers&rdquo; counts every MoE layer's choice of every token.</p>"
    << "<p class='explain' id='dispatch-accuracy'><b>Dispatch accuracy</b> is the cell of a domain's own expert: the "
    << "share of the domain's tokens routed first to the expert named after that domain (names compared without "
    << "regard to case). 100% means the router sends every token of the domain to its specialist; with E experts "
    << "chosen at random it would be about 1/E (" << format_percent(m.experts.empty() ? 0.0 : 1.0 / double(m.experts.size()))
    << " here). A dash means no expert carries the domain's name.</p>"
    << render_color_bar(scale, ticks, "share of the domain's tokens (cell colour)", "routing-scale", 360);
  auto heatmap = [&](const std::string& caption, const std::vector<std::vector<int64_t>>& counts, bool accuracy) {
    const auto sh = shares(counts);
    o << "<div><h3>" << html_escape(caption) << "</h3><table><tr><th>domain</th>";
    for (const auto& e : m.experts) o << "<th>" << html_escape(e) << "</th>";
    if (accuracy) o << "<th title='share of the domain&#39;s tokens whose top-1 expert is named after the domain'>"
                       "dispatch accuracy</th>";
    o << "</tr>";
    for (size_t d = 0; d < m.domains.size(); ++d) {
      o << "<tr><th>" << html_escape(m.domains[d]) << "</th>";
      for (size_t e = 0; e < sh[d].size(); ++e) {
        const double v = sh[d][e];
        o << "<td style='background:" << scale.color(v) << ";color:" << (scale.dark(v) ? "#fff" : "#000")
          << "' title='" << html_escape(m.domains[d]) << " -> " << html_escape(m.experts[e]) << ": " << pct(v) << "'>"
          << pct(v) << "</td>";
      }
      if (accuracy) {
        const double a = m.dispatch_accuracy(d);
        o << "<td class='accuracy'>" << (a < 0 ? "-" : pct(a)) << "</td>";
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

// The run report's charts are hand-written inline SVG (polylines and rects), so the page opens
// offline with no script or library. Per-layer metrics are drawn as their mean and extreme layer;
// the expert-load heatmaps average the logged steps into at most 200 columns.
#include "train/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace mf {

namespace {

struct Series {
  std::string label, color;
  std::vector<std::pair<double, double>> points;
};

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}

// One line chart as inline SVG: axes with min/max labels, a polyline per series, a legend.
std::string line_chart(const std::string& title, const std::vector<Series>& series, bool log_y = false) {
  const double W = 640, H = 260, L = 60, R = 16, T = 28, B = 36;
  double x0 = std::numeric_limits<double>::max(), x1 = -x0, y0 = x0, y1 = -x0;
  auto ty = [&](double y) { return log_y ? std::log10(std::max(y, 1e-12)) : y; };
  for (const Series& s : series)
    for (auto [x, y] : s.points) {
      if (!std::isfinite(y)) continue;
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, ty(y)), y1 = std::max(y1, ty(y));
    }
  std::ostringstream o;
  o << "<figure><figcaption>" << escape(title) << "</figcaption><svg viewBox='0 0 " << W << " " << H
    << "' width='" << W << "' height='" << H << "'>";
  if (x0 > x1) return o.str() + "<text x='20' y='40'>no data</text></svg></figure>";
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1;
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return H - B - (ty(y) - y0) / (y1 - y0) * (H - T - B); };
  o << "<rect x='" << L << "' y='" << T << "' width='" << W - L - R << "' height='" << H - T - B
    << "' fill='none' stroke='#999'/>";
  auto ylab = [&](double v) { return log_y ? num(std::pow(10.0, v)) : num(v); };
  o << "<text x='" << L - 4 << "' y='" << T + 10 << "' text-anchor='end' font-size='11'>" << ylab(y1) << "</text>";
  o << "<text x='" << L - 4 << "' y='" << H - B << "' text-anchor='end' font-size='11'>" << ylab(y0) << "</text>";
  o << "<text x='" << L << "' y='" << H - B + 14 << "' font-size='11'>" << num(x0) << "</text>";
  o << "<text x='" << W - R << "' y='" << H - B + 14 << "' text-anchor='end' font-size='11'>" << num(x1)
    << "</text><text x='" << (L + W - R) / 2 << "' y='" << H - 6 << "' text-anchor='middle' font-size='11'>step</text>";
  double legend_x = L + 8;
  for (const Series& s : series) {
    o << "<polyline fill='none' stroke='" << s.color << "' stroke-width='1.5' points='";
    for (auto [x, y] : s.points)
      if (std::isfinite(y)) o << px(x) << "," << py(y) << " ";
    o << "'/>";
    o << "<text x='" << legend_x << "' y='" << T - 8 << "' font-size='12' fill='" << s.color << "'>"
      << escape(s.label) << "</text>";
    legend_x += 12 + 7.5 * double(s.label.size());
  }
  return o.str() + "</svg></figure>";
}

// Expert load of one layer as a heatmap: one column per logged step (bucketed), one row per
// expert, the colour the expert's share relative to a uniform 1/E.
std::string load_heatmap(int layer, const std::vector<double>& steps, const std::vector<std::vector<double>>& shares) {
  const size_t E = shares.empty() ? 0 : shares.front().size();
  const size_t cols = std::min<size_t>(shares.size(), 200);
  const double W = 640, cell_h = 14, L = 60, T = 8;
  const double H = T + cell_h * double(E) + 24, cell_w = (W - L - 16) / double(std::max<size_t>(cols, 1));
  std::ostringstream o;
  o << "<figure><figcaption>layer " << layer << ": share of routed slots per expert (white = 1/E, red = more, "
    << "blue = less)</figcaption><svg viewBox='0 0 " << W << " " << H << "' width='" << W << "' height='" << H << "'>";
  for (size_t c = 0; c < cols; ++c) {
    const size_t lo = c * shares.size() / cols, hi = std::max(lo + 1, (c + 1) * shares.size() / cols);
    for (size_t e = 0; e < E; ++e) {
      double share = 0;
      for (size_t i = lo; i < hi; ++i) share += shares[i][e];
      share /= double(hi - lo);
      const double rel = std::clamp(share * double(E) - 1.0, -1.0, 1.0);  // -1 .. 1 around uniform
      const int red = rel > 0 ? 255 : int(255 * (1 + rel)), blue = rel < 0 ? 255 : int(255 * (1 - rel));
      const int green = int(255 * (1 - std::fabs(rel)));
      o << "<rect x='" << L + double(c) * cell_w << "' y='" << T + double(e) * cell_h << "' width='" << cell_w + 0.5
        << "' height='" << cell_h << "' fill='rgb(" << red << "," << green << "," << blue << ")'><title>step "
        << steps[lo] << ", expert " << e << ": " << num(share) << "</title></rect>";
    }
  }
  for (size_t e = 0; e < E; ++e)
    o << "<text x='" << L - 4 << "' y='" << T + double(e) * cell_h + 11 << "' text-anchor='end' font-size='11'>e" << e
      << "</text>";
  return o.str() + "</svg></figure>";
}

}  // namespace

std::string render_run_report(const std::string& metrics_jsonl, const std::string& title) {
  std::ifstream in(metrics_jsonl);
  MF_CHECK(in, metrics_jsonl, ": cannot open the run's metrics");
  Series train{"train loss", "#1f77b4", {}}, valid{"validation loss", "#d62728", {}}, lr{"learning rate", "#2ca02c", {}},
      grad{"gradient norm", "#9467bd", {}}, lb{"load-balancing loss", "#ff7f0e", {}}, z{"z-loss", "#8c564b", {}},
      entropy_mean{"mean over layers", "#17becf", {}}, entropy_min{"lowest layer", "#7f7f7f", {}},
      cv_mean{"mean over layers", "#1f77b4", {}}, cv_max{"most uneven layer", "#d62728", {}},
      drop_mean{"drop rate, mean over layers", "#ff7f0e", {}}, drop_max{"drop rate, worst layer", "#8c564b", {}},
      used_mean{"capacity used, mean over layers", "#2ca02c", {}};
  std::vector<double> load_steps;
  std::vector<std::vector<std::vector<double>>> load;  // [layer][logged step][expert] shares
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail(metrics_jsonl, ":", n, ": malformed JSON (", e.what(), ")");
    }
    MF_CHECK(j.is_object() && j.contains("step"), metrics_jsonl, ":", n, ": a metrics record needs a \"step\"");
    const double s = j["step"].get<double>();
    auto add = [&](Series& series, const char* key) {
      if (j.contains(key) && j[key].is_number()) series.points.emplace_back(s, j[key].get<double>());
    };
    add(train, "loss");
    add(valid, "valid_loss");
    add(lr, "lr");
    add(grad, "grad_norm");
    add(lb, "lb_loss");
    add(z, "z_loss");
    // Per-layer lists become their mean (and, where it helps, the extreme layer) over layers.
    auto per_layer = [&](const char* key, Series* mean, Series* lowest, Series* highest) {
      if (!j.contains(key) || !j[key].is_array() || j[key].empty()) return;
      const auto v = j[key].get<std::vector<double>>();
      double sum = 0, lo = v[0], hi = v[0];
      for (double x : v) sum += x, lo = std::min(lo, x), hi = std::max(hi, x);
      mean->points.emplace_back(s, sum / double(v.size()));
      if (lowest) lowest->points.emplace_back(s, lo);
      if (highest) highest->points.emplace_back(s, hi);
    };
    per_layer("router_entropy", &entropy_mean, &entropy_min, nullptr);
    per_layer("load_cv", &cv_mean, nullptr, &cv_max);
    per_layer("drop_rate", &drop_mean, nullptr, &drop_max);
    per_layer("capacity_used", &used_mean, nullptr, nullptr);
    if (j.contains("expert_load")) {
      const auto& layers = j["expert_load"];
      if (load.size() < layers.size()) load.resize(layers.size());
      load_steps.push_back(s);
      for (size_t l = 0; l < layers.size(); ++l) {
        std::vector<double> counts = layers[l].get<std::vector<double>>();
        double total = 0;
        for (double c : counts) total += c;
        for (double& c : counts) c = total > 0 ? c / total : 0;
        load[l].push_back(std::move(counts));
      }
    }
  }
  std::ostringstream o;
  o << "<!doctype html><html><head><meta charset='utf-8'><title>" << escape(title)
    << "</title><style>body{font-family:sans-serif;max-width:700px;margin:2em auto}figure{margin:1em 0}"
       "figcaption{font-weight:bold;margin-bottom:4px}</style></head><body><h1>"
    << escape(title) << "</h1>";
  if (!train.points.empty())
    o << "<p>" << train.points.size() << " steps; last train loss " << num(train.points.back().second)
      << (valid.points.empty() ? "" : "; last validation loss " + num(valid.points.back().second)) << "</p>";
  o << line_chart("Loss", {train, valid});
  o << line_chart("Learning rate", {lr});
  o << line_chart("Gradient norm (before clipping)", {grad}, true);
  if (!lb.points.empty()) o << line_chart("Router auxiliary losses (sum over MoE layers)", {lb, z});
  if (!entropy_mean.points.empty())
    o << line_chart("Router entropy (nats; log E = uniform)", {entropy_mean, entropy_min});
  if (!cv_mean.points.empty())
    o << line_chart("Expert load: coefficient of variation (0 = even)", {cv_mean, cv_max});
  if (!drop_mean.points.empty())
    o << line_chart("Capacity: dropped share of routed slots, share of capacity used", {drop_mean, drop_max, used_mean});
  for (size_t l = 0; l < load.size(); ++l) o << load_heatmap(int(l), load_steps, load[l]);
  o << "</body></html>\n";
  return o.str();
}

}  // namespace mf

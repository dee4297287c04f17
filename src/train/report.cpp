// The page is composed of report/ pieces (line_chart, heatmap, color_scale); this file decides
// which charts a run gets and how runs share them. With one run every series has its own colour;
// with several, a colour is a run and the line style is the quantity (solid = train / mean,
// dashed = validation / extreme layer), so the legend reads "RUN train", "RUN validation".
#include "train/report.h"

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "report/heatmap.h"
#include "report/html_text.h"
#include "report/line_chart.h"
#include "report/short_labels.h"

namespace mf {

namespace {

struct Quantity {
  std::string label;  // what the series is ("train", "validation", "mean over layers")
  bool dashed = false, markers = false;
  const Points* (*pick)(const RunMetrics&, const std::string&) = nullptr;
  std::string key;
};

const Points* scalar_of(const RunMetrics& m, const std::string& key) { return &m.scalar(key); }
const Points* layer_mean(const RunMetrics& m, const std::string& key) { return m.layers(key) ? &m.layers(key)->mean : nullptr; }
const Points* layer_min(const RunMetrics& m, const std::string& key) { return m.layers(key) ? &m.layers(key)->min : nullptr; }
const Points* layer_max(const RunMetrics& m, const std::string& key) { return m.layers(key) ? &m.layers(key)->max : nullptr; }

Quantity scalar_q(std::string label, std::string key, bool dashed = false, bool markers = false) {
  return {std::move(label), dashed, markers, scalar_of, std::move(key)};
}

// One chart over every run: a series per (run, quantity) that has points. Empty when no run
// logged any of the quantities, so a dense run has no routing charts.
std::string chart(const std::vector<ReportRun>& runs, const std::string& title, const std::string& y_title,
                  const std::vector<Quantity>& quantities, bool log_y = false) {
  LineChart c{title, "step", y_title, log_y, {}};
  for (size_t r = 0; r < runs.size(); ++r)
    for (size_t q = 0; q < quantities.size(); ++q) {
      const Quantity& qt = quantities[q];
      const Points* pts = qt.pick(runs[r].metrics, qt.key);
      if (!pts || pts->empty()) continue;
      LineSeries s;
      if (runs.size() == 1) {
        s.label = qt.label;
        s.color = series_color(q);
      } else {
        s.label = runs[r].info.name + (quantities.size() > 1 ? " " + qt.label : "");
        s.color = series_color(r);
      }
      s.dashed = qt.dashed;
      s.markers = qt.markers;
      s.points = *pts;
      c.series.push_back(std::move(s));
    }
  return c.series.empty() ? "" : render_line_chart(c);
}

std::string last_value(const Points& p) { return p.empty() ? "-" : format_g(p.back().second); }

std::string best_validation(const Points& p) {
  if (p.empty()) return "-";
  const auto best = std::min_element(p.begin(), p.end(), [](auto& a, auto& b) { return a.second < b.second; });
  return format_g(best->second) + " (step " + format_g(best->first, 10) + ")";
}

// One row per run: its colour (as in every chart), its headline numbers and, for several runs,
// what each is (one run says that under the title).
std::string runs_table(const std::vector<ReportRun>& runs) {
  const bool about = runs.size() > 1;
  std::ostringstream o;
  o << "<table class='runs'><tr><th></th><th>run</th><th>steps</th><th>last train loss</th>"
       "<th>best validation loss</th>" << (about ? "<th>about the run</th>" : "") << "</tr>";
  for (size_t r = 0; r < runs.size(); ++r) {
    const RunMetrics& m = runs[r].metrics;
    const Points& train = m.scalar("loss");
    o << "<tr><td><span class='swatch' style='background:" << (runs.size() > 1 ? series_color(r) : "transparent")
      << "'></span></td><td class='run'>" << html_escape(runs[r].info.name) << "</td><td>"
      << (train.empty() ? "-" : format_g(train.back().first, 10)) << "</td><td>" << last_value(train) << "</td><td>"
      << best_validation(m.scalar("valid_loss")) << "</td>"
      << (about ? "<td>" + html_escape(describe_run(runs[r].info)) + "</td>" : "") << "</tr>";
  }
  return o.str() + "</table>";
}

std::string load_heatmaps(const ReportRun& run, size_t run_index, bool name_run) {
  std::ostringstream o;
  const RunMetrics& m = run.metrics;
  for (size_t l = 0; l < m.load.size(); ++l) {
    size_t E = 0;
    for (const auto& shares : m.load[l]) E = std::max(E, shares.size());
    if (E == 0) continue;
    std::vector<std::string> names = run.info.expert_names;
    if (names.size() != E) {
      names.clear();
      for (size_t e = 0; e < E; ++e) names.push_back("expert" + std::to_string(e));
    }
    Heatmap h;
    h.title = (name_run ? run.info.name + ", " : "") + "layer " + std::to_string(l) +
              ": share of routed slots per expert";
    h.row_labels = short_unique_labels(names, 9);
    h.x = m.load_steps;
    h.values = m.load[l];
    const double uniform = 1.0 / double(E);
    h.scale = {ColorScale::Kind::Diverging, 0.0, uniform, 2 * uniform};
    for (double f : {0.0, 0.5, 1.0, 1.5, 2.0})
      h.scale_ticks.push_back({f * uniform, format_percent(f * uniform) + (f == 2.0 ? "+" : "")});
    h.scale_caption = "share of routed slots (white = uniform, 1/" + std::to_string(E) + " = " +
                      format_percent(uniform) + "; blue = less, red = more)";
    h.id = "load-r" + std::to_string(run_index) + "-l" + std::to_string(l);
    o << render_heatmap(h);
  }
  return o.str();
}

std::string page_title(const std::vector<ReportRun>& runs) {
  if (runs.size() == 1) return runs[0].info.name;
  std::string t = std::to_string(runs.size()) + " runs: ";
  for (size_t r = 0; r < runs.size(); ++r) t += (r ? ", " : "") + runs[r].info.name;
  return t;
}

}  // namespace

std::string render_run_report(const std::vector<ReportRun>& runs) {
  const std::string title = page_title(runs);
  std::ostringstream o;
  o << "<!doctype html><html><head><meta charset='utf-8'><title>" << html_escape(title)
    << "</title><style>body{font-family:system-ui,sans-serif;max-width:760px;margin:2em auto;color:#222}"
       "h1{font-size:1.5em;margin-bottom:.2em}.about{color:#555;margin-top:0}figure{margin:1.4em 0}"
       "figcaption{font-weight:600;margin-bottom:4px}svg{display:block;max-width:100%;height:auto}"
       "table.runs{border-collapse:collapse;font-size:13px}table.runs td,table.runs th{padding:3px 8px;"
       "text-align:left;border-bottom:1px solid #eee}table.runs th{white-space:nowrap}.swatch{display:inline-block;width:14px;height:14px;"
       "border-radius:3px}td.run{white-space:nowrap;font-weight:600}h2{font-size:1.15em;margin-top:1.8em}</style></head><body><h1>"
    << html_escape(title) << "</h1>";
  if (runs.size() == 1) o << "<p class='about'>" << html_escape(describe_run(runs[0].info)) << "</p>";
  o << runs_table(runs);

  o << "<h2 id='training'>Training</h2>";
  o << chart(runs, "Loss", "loss (nats per token)",
             {scalar_q("train", "loss"), scalar_q("validation", "valid_loss", true, true)});
  o << chart(runs, "Learning rate", "learning rate", {scalar_q("learning rate", "lr")});
  o << chart(runs, "Gradient norm (before clipping)", "gradient norm", {scalar_q("gradient norm", "grad_norm")}, true);
  o << chart(runs, "Throughput", "tokens per second", {scalar_q("tokens/s", "tokens_per_s")});

  // Aux losses differ in size by orders of magnitude: each gets its own axes.
  std::ostringstream routing;
  bool moe = false;
  for (const ReportRun& r : runs) moe = moe || !r.metrics.load.empty() || r.metrics.layers("load_cv");
  if (moe) {
    routing << chart(runs, "Load-balancing loss (sum over MoE layers)", "load-balancing loss",
                     {scalar_q("load-balancing loss", "lb_loss")});
    routing << chart(runs, "Router z-loss (sum over MoE layers)", "z-loss", {scalar_q("z-loss", "z_loss")});
  }
  routing << chart(runs, "Router entropy (nats; ln E = uniform routing)", "entropy (nats)",
                   {{"mean over layers", false, false, layer_mean, "router_entropy"},
                    {"lowest layer", true, false, layer_min, "router_entropy"}});
  routing << chart(runs, "Expert load: coefficient of variation (0 = even)", "load CV",
                   {{"mean over layers", false, false, layer_mean, "load_cv"},
                    {"most uneven layer", true, false, layer_max, "load_cv"}});
  routing << chart(runs, "Dropped share of routed slots (over capacity)", "drop rate",
                   {{"drop rate, mean over layers", false, false, layer_mean, "drop_rate"},
                    {"drop rate, worst layer", true, false, layer_max, "drop_rate"}});
  routing << chart(runs, "Share of expert capacity used", "capacity used",
                   {{"capacity used, mean over layers", false, false, layer_mean, "capacity_used"}});
  for (size_t r = 0; r < runs.size(); ++r) routing << load_heatmaps(runs[r], r, runs.size() > 1);
  if (!routing.str().empty()) o << "<h2 id='routing'>Routing</h2>" << routing.str();
  o << "</body></html>\n";
  return o.str();
}

std::vector<ReportRun> read_report_runs(const std::vector<std::string>& run_dirs) {
  std::vector<ReportRun> runs;
  for (const std::string& dir : run_dirs)
    runs.push_back({read_run_info(dir), read_run_metrics((std::filesystem::path(dir) / "metrics.jsonl").string())});
  // Runs of the same name in different places (a/run, b/run) are told apart by their parent.
  std::vector<bool> shared(runs.size(), false);
  for (size_t i = 0; i < runs.size(); ++i)
    for (size_t j = 0; j < runs.size(); ++j) shared[i] = shared[i] || (i != j && runs[i].info.name == runs[j].info.name);
  for (size_t i = 0; i < runs.size(); ++i) {
    if (!shared[i]) continue;
    const std::filesystem::path p = std::filesystem::absolute(run_dirs[i]).lexically_normal();
    const std::filesystem::path dir = p.filename().empty() ? p.parent_path() : p;
    runs[i].info.name = (dir.parent_path().filename() / dir.filename()).string();
  }
  return runs;
}

std::string render_run_report(const std::string& metrics_jsonl, const std::string& title) {
  ReportRun run;
  run.info.name = title;
  run.info.finished = true;  // nothing to say about it beyond its metrics
  run.metrics = read_run_metrics(metrics_jsonl);
  return render_run_report(std::vector<ReportRun>{std::move(run)});
}

}  // namespace mf

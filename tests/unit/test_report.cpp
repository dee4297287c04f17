// The run report (moeforge plot) as a page people read: numbered axes, visible sparse points,
// labelled log scale, aux losses on their own axes, heatmap colour scale with numbers, the run's
// recipe / size / date in the title, and several runs overlaid with a legend.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "core/error.h"
#include "train/report.h"

namespace fs = std::filesystem;

namespace {

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t i = s.find(what); i != std::string::npos; i = s.find(what, i + 1)) ++n;
  return n;
}

// The <figure> whose caption is `caption` (empty when there is none).
std::string figure(const std::string& html, const std::string& caption) {
  const size_t at = html.find("<figcaption>" + caption + "</figcaption>");
  if (at == std::string::npos) return "";
  return html.substr(at, html.find("</figure>", at) - at);
}

// The <g class='series'> element of the series labelled `label` in `svg`.
std::string series(const std::string& svg, const std::string& label) {
  const size_t at = svg.find("<g class='series' data-label='" + label + "'");
  if (at == std::string::npos) return "";
  return svg.substr(at, svg.find("</g>", at) - at);
}

std::vector<std::string> tick_labels(const std::string& svg, const std::string& axis) {
  std::vector<std::string> out;
  const std::regex re("class='tick " + axis + "'[^>]*>([^<]*)</text>");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), re); it != std::sregex_iterator(); ++it)
    out.push_back((*it)[1]);
  return out;
}

class RunReport : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("moeforge_report_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(RunReport, AxesHaveNumberedTicksAndGridlines) {
  const fs::path p = dir_ / "metrics.jsonl";
  {
    std::ofstream f(p);
    for (int s = 1; s <= 30; ++s)
      f << "{\"step\": " << s << ", \"loss\": " << 4.0 - 0.1 * s << ", \"lr\": 0.001, \"grad_norm\": " << 0.05 * s
        << ", \"lb_loss\": 2.1, \"z_loss\": 0.003, \"expert_load\": [[" << s << ", 10, 10, 10], [5, 5, 5, 5]]"
        << (s % 10 == 0 ? ", \"valid_loss\": 2.5" : "") << "}\n";
  }
  const std::string html = mf::render_run_report(p.string(), "tiny <run>");
  EXPECT_NE(html.find("<title>tiny &lt;run&gt;</title>"), std::string::npos);
  const std::string loss = figure(html, "Loss");
  ASSERT_FALSE(loss.empty());
  // x: whole steps from 0 to 30 in nice steps; y: the loss range 1..3.9 in nice steps.
  const auto xs = tick_labels(loss, "x"), ys = tick_labels(loss, "y");
  EXPECT_EQ(xs, (std::vector<std::string>{"0", "5", "10", "15", "20", "25", "30"}));
  ASSERT_GE(ys.size(), 4u);
  EXPECT_EQ(ys.front(), "1.0");
  EXPECT_EQ(ys.back(), "4.0");
  EXPECT_EQ(count(loss, "<line"), 2 * (xs.size() + ys.size()) + 2);  // a gridline and a tick mark per tick, 2 legend samples
  EXPECT_NE(loss.find(">loss (nats per token)</text>"), std::string::npos);
  EXPECT_NE(loss.find(">step</text>"), std::string::npos);

  // Log scale: said in the axis title, ticks at the decades (1-2-5 within them below three decades).
  const std::string grad = figure(html, "Gradient norm (before clipping)");
  EXPECT_NE(grad.find("data-scale='log'"), std::string::npos);
  EXPECT_NE(grad.find("gradient norm (log scale)"), std::string::npos);
  EXPECT_EQ(tick_labels(grad, "y"), (std::vector<std::string>{"0.01", "0.1", "1", "10"}));  // 0.05 .. 1.5

  // Aux losses on their own axes: lb ~ 2, z ~ 0.003 would be a flat line on a shared one.
  const std::string lb = figure(html, "Load-balancing loss (sum over MoE layers)");
  const std::string z = figure(html, "Router z-loss (sum over MoE layers)");
  EXPECT_EQ(count(lb, "<g class='series'"), 1u);
  EXPECT_EQ(count(z, "<g class='series'"), 1u);
  EXPECT_NE(tick_labels(z, "y").front().find("0.00"), std::string::npos) << z;

  // Malformed input names the line.
  std::ofstream(p, std::ios::app) << "{not json\n";
  try {
    mf::render_run_report(p.string(), "x");
    FAIL() << "no error for a malformed line";
  } catch (const mf::Error& e) {
    EXPECT_NE(std::string(e.what()).find(".jsonl:31"), std::string::npos) << e.what();
  }
}

TEST_F(RunReport, SparseSeriesGetMarkersSoOneValidationPointShows) {
  const fs::path p = dir_ / "metrics.jsonl";
  {
    std::ofstream f(p);
    for (int s = 1; s <= 100; ++s)
      f << "{\"step\": " << s << ", \"loss\": " << 3.0 - 0.01 * s << (s == 100 ? ", \"valid_loss\": 2.2" : "") << "}\n";
  }
  const std::string loss = figure(mf::render_run_report(p.string(), "one"), "Loss");
  const std::string valid = series(loss, "validation"), train = series(loss, "train");
  ASSERT_FALSE(valid.empty()) << loss;
  EXPECT_NE(valid.find("data-points='1'"), std::string::npos);
  EXPECT_EQ(count(valid, "<circle class='marker'"), 1u);  // the one point is a visible dot
  EXPECT_EQ(count(valid, "<polyline"), 0u);
  EXPECT_EQ(count(train, "<polyline"), 1u);  // dense: a line, no dots
  EXPECT_EQ(count(train, "<circle"), 0u);
  // The legend shows the validation sample with its dot and the dashed style of its line.
  EXPECT_EQ(count(loss, "<g class='legend-item'>"), 2u);
  EXPECT_NE(loss.find(">validation</text>"), std::string::npos);
  EXPECT_NE(valid.find("cx='" ), std::string::npos);
}

TEST_F(RunReport, ExpertLoadHeatmapHasANumberedColourScale) {
  const fs::path p = dir_ / "metrics.jsonl";
  {
    std::ofstream f(p);
    for (int s = 1; s <= 8; ++s) f << "{\"step\": " << s << ", \"loss\": 3, \"expert_load\": [[30, 10, 0, 0]]}\n";
  }
  const std::string html = mf::render_run_report(p.string(), "load");
  const std::string h = figure(html, "layer 0: share of routed slots per expert");
  ASSERT_FALSE(h.empty());
  EXPECT_EQ(count(h, "<rect class='cell'"), 8u * 4u);
  EXPECT_NE(h.find("class='color-scale'"), std::string::npos);
  std::vector<std::string> scale;
  const std::regex re("class='scale-tick'[^>]*>([^<]*)</text>");
  for (auto it = std::sregex_iterator(h.begin(), h.end(), re); it != std::sregex_iterator(); ++it) scale.push_back((*it)[1]);
  EXPECT_EQ(scale, (std::vector<std::string>{"0.0%", "12.5%", "25.0%", "37.5%", "50.0%+"}));
  EXPECT_NE(h.find("white = uniform, 1/4 = 25.0%"), std::string::npos);
  // Expert 0 holds 75% (full red), expert 1 the uniform 25% (white), experts 2-3 none (full blue).
  EXPECT_NE(h.find("fill='rgb(178,24,43)'><title>step 1, expert0: 75.0%"), std::string::npos) << h.substr(0, 600);
  EXPECT_NE(h.find("fill='rgb(255,255,255)'><title>step 1, expert1: 25.0%"), std::string::npos);
  EXPECT_NE(h.find("fill='rgb(33,102,172)'><title>step 1, expert2: 0.0%"), std::string::npos);
  EXPECT_EQ(count(h, "class='row-label'"), 4u);
}

// A finished run's directory: the title line carries its recipe, size, routing and date.
void write_run(const fs::path& dir, double loss_offset, int valid_every) {
  fs::create_directories(dir / "model");
  std::ofstream(dir / "summary.json") << "{\"recipe\": \"/somewhere/tiny-moe.yaml\", \"steps\": 20}\n";
  std::ofstream(dir / "model" / "config.json")
      << R"({"model_type": "mixtral", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 48,
             "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
             "num_local_experts": 4, "num_experts_per_tok": 2, "max_position_embeddings": 64,
             "tie_word_embeddings": true})";
  std::ofstream f(dir / "metrics.jsonl");
  for (int s = 1; s <= 20; ++s)
    f << "{\"step\": " << s << ", \"loss\": " << loss_offset + 3.0 - 0.05 * s << ", \"lr\": 0.003"
      << ", \"load_cv\": [0.2, 0.3], \"expert_load\": [[1, 2, 3, 4], [4, 3, 2, 1]]"
      << (s % valid_every == 0 ? ", \"valid_loss\": " + std::to_string(loss_offset + 2.5) : "") << "}\n";
}

TEST_F(RunReport, TitleNamesRecipeModelSizeAndDate) {
  write_run(dir_ / "tiny", 0, 10);
  const std::string html = mf::render_run_report(mf::read_report_runs({(dir_ / "tiny").string()}));
  EXPECT_NE(html.find("<h1>tiny</h1>"), std::string::npos);
  const size_t about = html.find("<p class='about'>");
  ASSERT_NE(about, std::string::npos);
  const std::string line = html.substr(about, html.find("</p>", about) - about);
  EXPECT_NE(line.find("recipe tiny-moe.yaml"), std::string::npos) << line;
  EXPECT_TRUE(std::regex_search(line, std::regex(R"(\d+\.\d+K parameters \(\d+\.\d+K active\))"))) << line;
  EXPECT_NE(line.find("mixtral, 2 layers, hidden 32"), std::string::npos) << line;
  EXPECT_NE(line.find("top-2 of 4"), std::string::npos) << line;
  EXPECT_TRUE(std::regex_search(line, std::regex(R"(20\d\d-\d\d-\d\d \d\d:\d\d UTC)"))) << line;
  EXPECT_EQ(line.find("unfinished"), std::string::npos) << line;
  fs::remove(dir_ / "tiny" / "summary.json");
  const std::string running = mf::render_run_report(mf::read_report_runs({(dir_ / "tiny").string()}));
  EXPECT_NE(running.find("unfinished (no summary.json)"), std::string::npos);
}

TEST_F(RunReport, SeveralRunsOverlayOneColourEachWithALegend) {
  write_run(dir_ / "a" / "run", 0.0, 10);
  write_run(dir_ / "b" / "run", 0.5, 5);
  const std::string html =
      mf::render_run_report(mf::read_report_runs({(dir_ / "a" / "run").string(), (dir_ / "b" / "run").string()}));
  EXPECT_NE(html.find("<h1>2 runs: a/run, b/run</h1>"), std::string::npos) << html.substr(0, 800);
  const std::string loss = figure(html, "Loss");
  const std::string a_train = series(loss, "a/run train"), b_train = series(loss, "b/run train");
  const std::string a_valid = series(loss, "a/run validation"), b_valid = series(loss, "b/run validation");
  ASSERT_FALSE(a_train.empty() || b_train.empty() || a_valid.empty() || b_valid.empty()) << loss;
  // One colour per run, shared by its train and validation series; the runs' colours differ.
  auto stroke = [](const std::string& s) {
    const size_t at = s.find("stroke='");
    return at == std::string::npos ? std::string() : s.substr(at + 8, 7);
  };
  EXPECT_NE(stroke(a_train), stroke(b_train));
  EXPECT_EQ(stroke(a_train), stroke(a_valid));
  EXPECT_EQ(stroke(b_train), stroke(b_valid));
  EXPECT_NE(a_valid.find("stroke-dasharray"), std::string::npos);
  EXPECT_EQ(b_valid.find("data-points='4'") != std::string::npos, true);
  EXPECT_EQ(count(loss, "<g class='legend-item'>"), 4u);
  for (const char* label : {">a/run train<", ">b/run train<", ">a/run validation<", ">b/run validation<"})
    EXPECT_NE(loss.find(label), std::string::npos) << label;
  // Single-quantity charts name just the run; the runs table shows each run's colour.
  const std::string lr = figure(html, "Learning rate");
  EXPECT_NE(lr.find(">a/run</text>"), std::string::npos);
  EXPECT_NE(html.find("<span class='swatch' style='background:" + stroke(a_train) + "'>"), std::string::npos);
  // Heatmaps: every run's layers, captioned with the run.
  EXPECT_FALSE(figure(html, "b/run, layer 1: share of routed slots per expert").empty());
}

}  // namespace

// The reports people look at, through the CLI: `moeforge plot RUN1 RUN2` overlays two tiny MoE
// runs on one page (a colour and legend entry per run, validation points drawn, aux losses on
// their own charts, the recipe and model size in the runs table), one run writes RUN/report.html,
// and `inspect --tokens` on the same model keeps the default expert names expert0..expert3 apart.
#include <gtest/gtest.h>

#include <regex>
#include <set>

#include "cli_run.h"

namespace {
using namespace mf::test;

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t i = s.find(what); i != std::string::npos; i = s.find(what, i + 1)) ++n;
  return n;
}

std::string figure(const std::string& html, const std::string& caption) {
  const size_t at = html.find("<figcaption>" + caption + "</figcaption>");
  return at == std::string::npos ? "" : html.substr(at, html.find("</figure>", at) - at);
}

class ReportsCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (binary().empty()) GTEST_SKIP() << "MOEFORGE_BIN not set (run through ctest)";
    dir_ = fs::temp_directory_path() / ("moeforge_reports_e2e_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream text(dir_ / "corpus.txt");
    for (int i = 0; i < 200; ++i) text << "to be or not to be, that is the question. " << (i % 7) << "\n";
    std::ofstream(dir_ / "tiny-moe.yaml")
        << "model:\n"
           "  init: scratch\n"
           "  config: {model_type: mixtral, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2,\n"
           "           num_attention_heads: 4, num_key_value_heads: 2, num_local_experts: 4,\n"
           "           num_experts_per_tok: 2, max_position_embeddings: 64, tie_word_embeddings: true}\n"
           "tokenizer: char\n"
           "data: {train: corpus.txt, valid_fraction: 0.1}\n"
           "train: {steps: 8, batch: 4, seq_len: 32, lr: 3.0e-3, warmup: 1, eval_every: 8, eval_windows: 2,\n"
           "        lb_coef: 0.01, z_coef: 0.001}\n"
           "output: run\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  void train(const std::string& name, const std::string& lr) {
    const RunResult r = run({"train", (dir_ / "tiny-moe.yaml").string(), "--quiet", "-o", (dir_ / name).string(),
                             "--set", "train.lr=" + lr});
    ASSERT_EQ(r.rc, 0) << r.err;
  }
  fs::path dir_;
};

TEST_F(ReportsCli, PlotOverlaysTwoRunsWithALegend) {
  train("fast", "0.01");
  train("slow", "0.001");
  const fs::path page = dir_ / "both.html";
  const RunResult r = run({"plot", (dir_ / "fast").string(), (dir_ / "slow").string(), "-o", page.string()});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.out, page.string())) << r.out;
  const std::string html = slurp(page);
  EXPECT_TRUE(has(html, "<h1>2 runs: fast, slow</h1>")) << html.substr(0, 1000);
  // The runs table: each run's recipe and size, one colour each.
  EXPECT_EQ(count(html, "recipe tiny-moe.yaml"), 2u);
  EXPECT_EQ(count(html, "K active)"), 2u) << html.substr(0, 3000);  // "31.5K parameters (18.9K active)"
  std::set<std::string> swatches;
  const std::regex swatch("class='swatch' style='background:(#[0-9a-f]{6})'");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), swatch); it != std::sregex_iterator(); ++it)
    swatches.insert((*it)[1]);
  EXPECT_EQ(swatches.size(), 2u);

  // Loss: both runs' train lines and their single validation point (eval at the last step), each
  // a dot; the legend names all four.
  const std::string loss = figure(html, "Loss");
  for (const char* label : {"fast train", "slow train", "fast validation", "slow validation"})
    EXPECT_TRUE(has(loss, "data-label='" + std::string(label) + "'")) << label;
  EXPECT_EQ(count(loss, "<g class='legend-item'>"), 4u);
  EXPECT_TRUE(has(loss, "<g class='series' data-label='fast validation' data-points='1'><circle class='marker'"))
      << loss;
  // The learning rate differs by 10x between the runs: two series on one chart.
  EXPECT_EQ(count(figure(html, "Learning rate"), "<g class='series'"), 2u);
  EXPECT_TRUE(has(figure(html, "Gradient norm (before clipping)"), "(log scale)"));
  EXPECT_EQ(count(figure(html, "Load-balancing loss (sum over MoE layers)"), "<g class='series'"), 2u);
  EXPECT_EQ(count(figure(html, "Router z-loss (sum over MoE layers)"), "<g class='series'"), 2u);
  // Expert load: both runs' two layers, each with its colour scale.
  for (const char* run_name : {"fast", "slow"})
    for (int l = 0; l < 2; ++l) {
      const std::string h = figure(html, std::string(run_name) + ", layer " + std::to_string(l) +
                                             ": share of routed slots per expert");
      EXPECT_EQ(count(h, "class='row-label'"), 4u) << run_name << " " << l;
      EXPECT_TRUE(has(h, "class='color-scale'"));
    }

  // One run: the page goes beside its metrics, with the run's description under the title.
  const RunResult one = run({"plot", (dir_ / "fast").string()});
  ASSERT_EQ(one.rc, 0) << one.err;
  const std::string single = slurp(dir_ / "fast" / "report.html");
  EXPECT_TRUE(has(single, "<h1>fast</h1>"));
  EXPECT_TRUE(has(single, "<p class='about'>recipe tiny-moe.yaml")) << single.substr(0, 1500);
  // A directory that is not a run: an error naming the missing metrics.
  const RunResult bad = run({"plot", (dir_ / "fast").string(), (dir_ / "nothing").string(), "-o", page.string()});
  EXPECT_EQ(bad.rc, 1);
  EXPECT_TRUE(has(bad.err, "nothing/metrics.jsonl")) << bad.err;
  const RunResult none = run({"plot"});
  EXPECT_EQ(none.rc, 2);
}

TEST_F(ReportsCli, InspectTokensKeepsExpertNamesApart) {
  train("run", "0.003");
  const RunResult r = run({"inspect", "-m", (dir_ / "run" / "model").string(), "-p", "to be or not", "--tokens"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const size_t grid = r.out.find("top-1 expert per token");
  ASSERT_NE(grid, std::string::npos) << r.out;
  std::istringstream in(r.out.substr(grid));
  std::string line;
  std::getline(in, line);
  std::getline(in, line);
  EXPECT_TRUE(has(line, "L0") && has(line, "L1")) << line;
  std::set<std::string> seen;
  int rows = 0;
  while (std::getline(in, line) && !line.empty() && line.rfind("experts:", 0) != 0) {
    ++rows;
    std::istringstream cells(line.substr(16));
    std::vector<std::string> cell;
    for (std::string c; cells >> c;) cell.push_back(c);
    ASSERT_EQ(cell.size(), 2u) << line;
    for (const std::string& c : cell) {
      EXPECT_TRUE(std::regex_match(c, std::regex("expert[0-3]"))) << "cell '" << c << "' in: " << line;
      seen.insert(c);
    }
  }
  EXPECT_EQ(rows, 12) << r.out;  // one row per character of the prompt
  EXPECT_GE(seen.size(), 1u);
}

}  // namespace

// The pieces the static reports are built from: axis ticks, short expert labels, the colour
// scale, the `inspect --tokens` grid and the routing page of `inspect --data -o`.
#include <gtest/gtest.h>

#include <cmath>
#include <regex>
#include <sstream>

#include "infer/router_analysis.h"
#include "infer/token_route_grid.h"
#include "report/axis_ticks.h"
#include "report/color_scale.h"
#include "report/line_chart.h"
#include "report/short_labels.h"

namespace {

using Labels = std::vector<std::string>;

TEST(AxisTicks, LinearTicksTakeNiceStepsAndCoverTheData) {
  const mf::AxisTicks t = mf::linear_ticks(0.37, 2.91, 5);
  EXPECT_EQ(t.labels, (Labels{"0.0", "0.5", "1.0", "1.5", "2.0", "2.5", "3.0"}));
  EXPECT_LE(t.lo, 0.37);
  EXPECT_GE(t.hi, 2.91);
  EXPECT_EQ(mf::linear_ticks(1, 1000, 5, true).labels, (Labels{"0", "200", "400", "600", "800", "1000"}));
  // One value: a range around it, never a zero-width axis.
  const mf::AxisTicks one = mf::linear_ticks(7, 7, 5, true);
  EXPECT_LT(one.lo, 7);
  EXPECT_GT(one.hi, 7);
  EXPECT_GE(one.values.size(), 2u);
  // Learning rates read as exponents, not as runs of zeros.
  EXPECT_EQ(mf::linear_ticks(1e-5, 4e-5, 3).labels, (Labels{"1e-05", "2e-05", "3e-05", "4e-05"}));
}

TEST(AxisTicks, LogTicksByDecade) {
  EXPECT_EQ(mf::log_ticks(0.3, 9).labels, (Labels{"0.1", "0.2", "0.5", "1", "2", "5", "10"}));
  EXPECT_EQ(mf::log_ticks(2e-4, 30).labels, (Labels{"0.0001", "0.001", "0.01", "0.1", "1", "10", "100"}));
  const mf::AxisTicks same = mf::log_ticks(5, 5);
  EXPECT_LT(same.lo, 5);
  EXPECT_GT(same.hi, 5);
}

TEST(ShortLabels, StayDistinctForAnyNames) {
  // What made `inspect --tokens` unreadable: four names sharing their first four letters.
  EXPECT_EQ(mf::short_unique_labels({"expert0", "expert1", "expert2", "expert3"}, 10),
            (Labels{"expert0", "expert1", "expert2", "expert3"}));
  EXPECT_EQ(mf::short_unique_labels({"expert0", "expert1", "expert2", "expert3"}, 4), (Labels{"0", "1", "2", "3"}));
  EXPECT_EQ(mf::short_unique_labels({"expert_mathematics", "expert_programming", "expert_medicine"}, 8),
            (Labels{"mathemat", "programm", "medicine"}));
  EXPECT_EQ(mf::short_unique_labels({"Coder", "Cook"}, 3), (Labels{"Cod", "Coo"}));
  // Cutting cannot separate them: the index.
  EXPECT_EQ(mf::short_unique_labels({"abcdefX", "abcdefY", "abcdefX"}, 4), (Labels{"e0", "e1", "e2"}));
  // UTF-8 names are cut at characters, never inside one.
  const Labels greek = mf::short_unique_labels({"μαθηματικά", "προγραμματισμός"}, 4);
  EXPECT_EQ(greek, (Labels{"μαθη", "προγ"}));
  EXPECT_EQ(mf::utf8_length("μαθη"), 4u);
  EXPECT_EQ(mf::pad_right("μα", 4), "μα  ");
}

TEST(ColorScale, DivergingIsWhiteInTheMiddleAndTheBarHasNumbers) {
  const mf::ColorScale s{mf::ColorScale::Kind::Diverging, 0.0, 0.25, 0.5};
  EXPECT_EQ(s.color(0.25), "rgb(255,255,255)");
  EXPECT_NE(s.color(0.0), s.color(0.5));
  EXPECT_EQ(s.color(0.9), s.color(0.5));  // clamped
  const std::string bar = mf::render_color_bar(s, {{0, "0%"}, {0.25, "25%"}, {0.5, "50%"}}, "share", "g1");
  std::vector<std::string> ticks;
  const std::regex re("class='scale-tick'[^>]*>([^<]*)</text>");
  for (auto it = std::sregex_iterator(bar.begin(), bar.end(), re); it != std::sregex_iterator(); ++it) ticks.push_back((*it)[1]);
  EXPECT_EQ(ticks, (Labels{"0%", "25%", "50%"}));
  EXPECT_NE(bar.find("<linearGradient id='g1'>"), std::string::npos);
  EXPECT_NE(bar.find("fill='url(#g1)'"), std::string::npos);
}

TEST(LineChart, EmptyChartSaysNoData) {
  mf::LineChart c;
  c.title = "Nothing";
  c.series.push_back({"x", "#000", {{1, NAN}}});
  EXPECT_NE(mf::render_line_chart(c).find(">no data</text>"), std::string::npos);
}

mf::PromptRoutes routes(const Labels& names, const std::vector<std::vector<int>>& top1_per_layer) {
  mf::PromptRoutes r;
  r.expert_names = names;
  for (size_t l = 0; l < top1_per_layer.size(); ++l) {
    mf::LayerRoutes lr;
    lr.layer = int(l);
    for (int e : top1_per_layer[l]) lr.tokens.push_back({{e}, {0.9f}});
    r.layers.push_back(lr);
  }
  return r;
}

// The grid's cells (after the token column) for each token row.
std::vector<Labels> grid_cells(const std::string& grid, size_t tokens) {
  std::vector<Labels> rows;
  std::istringstream in(grid);
  std::string line;
  std::getline(in, line);  // title
  std::getline(in, line);  // header
  for (size_t t = 0; t < tokens && std::getline(in, line); ++t) {
    std::istringstream cells(line.substr(16));
    Labels row;
    for (std::string c; cells >> c;) row.push_back(c);
    rows.push_back(row);
  }
  return rows;
}

TEST(TokenRouteGrid, ExpertNamesStayDistinguishable) {
  const std::string grid = mf::format_token_route_grid(routes({"expert0", "expert1", "expert2", "expert3"},
                                                              {{0, 1, 2, 3}, {3, 2, 1, 0}}),
                                                       {"a", "b", "c", "d"});
  EXPECT_NE(grid.find("L0       L1"), std::string::npos) << grid;
  const auto rows = grid_cells(grid, 4);
  ASSERT_EQ(rows.size(), 4u) << grid;
  EXPECT_EQ(rows[0], (Labels{"expert0", "expert3"})) << grid;
  EXPECT_EQ(rows[1], (Labels{"expert1", "expert2"}));
  EXPECT_EQ(rows[2], (Labels{"expert2", "expert1"}));
  EXPECT_EQ(rows[3], (Labels{"expert3", "expert0"}));
  EXPECT_EQ(grid.find("experts:"), std::string::npos);  // full names: no legend needed

  // Long names: short distinct labels and a legend that maps them back.
  const std::string longer = mf::format_token_route_grid(
      routes({"expert_mathematics", "expert_programming", "expert_medicine"}, {{0, 1, 2}}), {"x\n", " y", "z"}, 8);
  const auto cells = grid_cells(longer, 3);
  EXPECT_EQ(cells[0], (Labels{"mathemat"})) << longer;
  EXPECT_EQ(cells[1], (Labels{"programm"}));
  EXPECT_EQ(cells[2], (Labels{"medicine"}));
  EXPECT_NE(longer.find("x\\n"), std::string::npos);  // a newline token shows as \n
  EXPECT_NE(longer.find("\n\xC2\xB7y "), std::string::npos) << longer;  // a leading space as a middle dot
  EXPECT_EQ(longer.find(" \n"), std::string::npos);  // no trailing spaces
  EXPECT_NE(longer.find("experts: mathemat = expert_mathematics, programm = expert_programming, medicine = expert_medicine"),
            std::string::npos)
      << longer;
}

TEST(RoutingPage, ExplainsDispatchAccuracyAndHasANumberedScale) {
  mf::RoutingMatrix m;
  m.domains = {"math", "code"};
  m.experts = {"Math", "Code", "other"};
  m.layers = {0};
  m.overall = {{8, 2, 0}, {0, 0, 10}};
  m.counts = {m.overall};
  EXPECT_DOUBLE_EQ(m.dispatch_accuracy(0), 0.8);
  EXPECT_DOUBLE_EQ(m.dispatch_accuracy(1), 0.0);
  const std::string html = mf::routing_matrix_html(m, "routes");
  EXPECT_NE(html.find("<b>Dispatch accuracy</b> is the cell of a domain's own expert"), std::string::npos);
  EXPECT_NE(html.find("about 1/E (33.3% here)"), std::string::npos);
  std::vector<std::string> ticks;
  const std::regex re("class='scale-tick'[^>]*>([^<]*)</text>");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), re); it != std::sregex_iterator(); ++it) ticks.push_back((*it)[1]);
  EXPECT_EQ(ticks, (Labels{"0%", "25%", "50%", "75%", "100%"}));
  // Cells are coloured on the same scale: 100% darkest with white text, 0% white.
  const mf::ColorScale scale{mf::ColorScale::Kind::Sequential, 0.0, 0.5, 1.0};
  EXPECT_NE(html.find("background:" + scale.color(1.0) + ";color:#fff' title='code -> other: 100.0%'"), std::string::npos);
  EXPECT_NE(html.find("background:rgb(255,255,255);color:#000' title='code -> Math: 0.0%'"), std::string::npos);
  EXPECT_NE(html.find("<td class='accuracy'>80.0%</td>"), std::string::npos);
  // The text table explains the column too.
  EXPECT_NE(mf::routing_matrix_table(m, false).find("dispatch = dispatch accuracy"), std::string::npos);
}

}  // namespace

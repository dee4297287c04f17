#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "train/report.h"

namespace fs = std::filesystem;

TEST(RunReport, RendersCurvesAndExpertLoad) {
  const fs::path p = fs::temp_directory_path() / ("moeforge_report_" + std::to_string(::getpid()) + ".jsonl");
  {
    std::ofstream f(p);
    for (int s = 1; s <= 30; ++s)
      f << "{\"step\": " << s << ", \"loss\": " << 4.0 - 0.1 * s << ", \"lr\": 0.001, \"grad_norm\": 1.5"
        << ", \"lb_loss\": 2.1, \"z_loss\": 3.0, \"expert_load\": [[" << s << ", 10, 10, 10], [5, 5, 5, 5]]"
        << (s % 10 == 0 ? ", \"valid_loss\": 2.5" : "") << "}\n";
  }
  const std::string html = mf::render_run_report(p.string(), "tiny <run>");
  EXPECT_NE(html.find("<title>tiny &lt;run&gt;</title>"), std::string::npos);
  EXPECT_NE(html.find("validation loss"), std::string::npos);
  EXPECT_NE(html.find("30 steps; last train loss 1"), std::string::npos);
  EXPECT_NE(html.find("layer 1: share of routed slots"), std::string::npos);
  size_t polylines = 0;
  for (size_t i = html.find("<polyline"); i != std::string::npos; i = html.find("<polyline", i + 1)) ++polylines;
  EXPECT_EQ(polylines, 6u);  // train, valid, lr, grad norm, lb, z
  std::ofstream(p, std::ios::app) << "{not json\n";
  try {
    mf::render_run_report(p.string(), "x");
    FAIL() << "no error for a malformed line";
  } catch (const mf::Error& e) {
    EXPECT_NE(std::string(e.what()).find(".jsonl:31"), std::string::npos) << e.what();
  }
  fs::remove(p);
}

TEST(RunReport, DrawsRoutingStatisticsPerLayer) {
  const fs::path p = fs::temp_directory_path() / ("moeforge_report_routing_" + std::to_string(::getpid()) + ".jsonl");
  {
    std::ofstream f(p);
    for (int s = 1; s <= 5; ++s)
      f << "{\"step\": " << s << ", \"loss\": 3, \"load_cv\": [0.5, " << 0.1 * s << "], \"drop_rate\": [0.2, 0.1],"
        << " \"capacity_used\": [0.9, 0.8], \"router_entropy\": [1.2, 1.3]}\n";
  }
  const std::string html = mf::render_run_report(p.string(), "routing");
  EXPECT_NE(html.find("coefficient of variation"), std::string::npos);
  EXPECT_NE(html.find("drop rate, worst layer"), std::string::npos);
  EXPECT_NE(html.find("capacity used, mean over layers"), std::string::npos);
  fs::remove(p);
}

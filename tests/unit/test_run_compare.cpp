// moeforge compare's reading of run directories: routing from the exported config, losses and
// speed from summary.json, routing balance from the last quarter of metrics.jsonl; a run
// without a summary is a clear error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "model/config_json.h"
#include "train/run_compare.h"

namespace fs = std::filesystem;

TEST(RunCompare, ReadsSummaryConfigAndRecentRoutingStatistics) {
  const fs::path dir = fs::temp_directory_path() / ("moeforge_compare_" + std::to_string(::getpid())) / "switch_run";
  fs::create_directories(dir / "model");
  mf::ModelConfig c;
  c.model_type = "mixtral";
  c.vocab_size = 50;
  c.hidden_size = 16;
  c.intermediate_size = 32;
  c.num_layers = 2;
  c.num_heads = 2;
  c.num_kv_heads = 2;
  c.num_experts = 4;
  c.top_k = 1;
  c.routing.policy = mf::RouterPolicy::Switch;
  c.routing.capacity_factor = 1.25;
  std::ofstream(dir / "model" / "config.json") << mf::config_to_hf_json(c).dump();
  std::ofstream(dir / "summary.json") << R"({"steps": 8, "valid_loss": 2.5, "best_valid_loss": 2.4, "tokens_per_s": 1234.0, "wall_s": 90})";
  {
    std::ofstream m(dir / "metrics.jsonl");
    // Steps 1-6 are ignored; 7 and 8 (the last quarter) average to cv 0.2, drop 0.1.
    for (int s = 1; s <= 8; ++s)
      m << "{\"step\": " << s << ", \"load_cv\": [" << (s > 6 ? 0.1 : 9.0) << ", " << (s > 6 ? 0.3 : 9.0)
        << "], \"drop_rate\": [" << (s > 6 ? 0.1 : 9.0) << ", 0.1], \"router_entropy\": [1.0, 1.0]}\n";
  }
  const mf::RunRow r = mf::read_run(dir.string());
  EXPECT_EQ(r.name, "switch_run");
  EXPECT_EQ(r.routing, "switch k=1 cap 1.25");
  EXPECT_EQ(r.steps, 8);
  EXPECT_DOUBLE_EQ(r.valid_loss, 2.5);
  EXPECT_DOUBLE_EQ(r.best_valid_loss, 2.4);
  EXPECT_NEAR(r.load_cv, 0.2, 1e-12);
  EXPECT_NEAR(r.drop_rate, 0.1, 1e-12);
  EXPECT_EQ(r.parameters, mf::count_parameters(c, false));
  const std::string md = mf::format_runs_table({r}, true);
  EXPECT_NE(md.find("| switch_run | switch k=1 cap 1.25 | 8 | 2.5000 | 2.4000 | 1234 | 1.5 |"), std::string::npos) << md;
  const std::string text = mf::format_runs_table({r}, false);
  EXPECT_NE(text.find("load CV"), std::string::npos);

  fs::remove(dir / "summary.json");
  try {
    mf::read_run(dir.string());
    FAIL() << "a run without summary.json was read";
  } catch (const mf::Error& e) {
    EXPECT_NE(std::string(e.what()).find("is the run finished?"), std::string::npos) << e.what();
  }
  fs::remove_all(dir.parent_path());
}

// Routing policies from the command line: one short run per policy (set through --set on the
// model config, as scripts/compare-routing.sh does), the routing statistics in metrics.jsonl,
// the plot, `moeforge compare` over the runs, and clear errors for bad policy settings.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli_run.h"

namespace {
using namespace mf::test;

class RoutingCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (binary().empty()) GTEST_SKIP() << "MOEFORGE_BIN not set (run through ctest)";
    dir_ = fs::temp_directory_path() / ("moeforge_routing_e2e_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream text(dir_ / "corpus.txt");
    for (int i = 0; i < 200; ++i) text << "to be or not to be, that is the question. " << (i % 7) << "\n";
    std::ofstream(dir_ / "recipe.yaml")
        << "model:\n"
           "  init: scratch\n"
           "  config: {model_type: mixtral, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2,\n"
           "           num_attention_heads: 4, num_key_value_heads: 2, num_local_experts: 4,\n"
           "           num_experts_per_tok: 2, max_position_embeddings: 64, tie_word_embeddings: true,\n"
           "           router_policy: noisy_topk, capacity_factor: 1.0}\n"
           "tokenizer: char\n"
           "data: {train: corpus.txt, valid_fraction: 0.1}\n"
           "train: {steps: 6, batch: 4, seq_len: 32, lr: 3.0e-3, warmup: 1, eval_every: 3, eval_windows: 4,\n"
           "        checkpoint_every: 3}\n"
           "output: run\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  RunResult train(const std::string& name, std::vector<std::string> sets) {
    std::vector<std::string> args = {"train", (dir_ / "recipe.yaml").string(), "--quiet", "-o", (dir_ / name).string()};
    for (const std::string& s : sets) {
      args.push_back("--set");
      args.push_back(s);
    }
    return run(args);
  }
  fs::path dir_;
};

TEST_F(RoutingCli, EveryPolicyTrainsLogsItsStatisticsAndCompares) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> runs = {
      {"noisy", {}},
      {"mixtral", {"model.config.router_policy=softmax_topk", "model.config.capacity_factor=0", "train.lb_coef=0.01"}},
      {"switch", {"model.config.router_policy=switch", "model.config.num_experts_per_tok=1"}},
      {"expert_choice", {"model.config.router_policy=expert_choice", "model.config.capacity_factor=2"}},
      {"shared", {"model.config.shared_expert_intermediate_size=16", "train.lb_scope=sequence", "train.z_coef=0.001"}},
      {"bias", {"model.config.router_selection_bias=true", "train.balance_bias_rate=0.01", "train.lb_coef=0"}},
  };
  std::vector<std::string> compare = {"compare"};
  for (const auto& [name, sets] : runs) {
    SCOPED_TRACE(name);
    const RunResult r = train(name, sets);
    ASSERT_EQ(r.rc, 0) << r.err;
    std::ifstream metrics(dir_ / name / "metrics.jsonl");
    std::string line;
    std::getline(metrics, line);
    const auto rec = nlohmann::json::parse(line);
    for (const char* key : {"expert_load", "load_cv", "router_entropy", "router_z"}) EXPECT_TRUE(rec.contains(key)) << key;
    EXPECT_EQ(rec["expert_load"].size(), 2u);
    EXPECT_EQ(rec.contains("drop_rate"), name == "noisy" || name == "switch" || name == "expert_choice" ||
                                             name == "shared" || name == "bias")
        << line;
    EXPECT_TRUE(fs::exists(dir_ / name / "summary.json"));
    compare.push_back((dir_ / name).string());
  }
  const RunResult c = run(compare);
  ASSERT_EQ(c.rc, 0) << c.err;
  for (const char* s : {"noisy_topk k=2 cap 1", "softmax_topk k=2", "switch k=1", "expert_choice cap 2", "+shared",
                        "+bias", "load CV"})
    EXPECT_TRUE(has(c.out, s)) << s << "\n" << c.out;
  const RunResult p = run({"plot", (dir_ / "noisy").string()});
  ASSERT_EQ(p.rc, 0) << p.err;
  EXPECT_TRUE(has(slurp(dir_ / "noisy" / "report.html"), "drop rate"));
}

TEST_F(RoutingCli, BadPolicySettingsAreClearErrors) {
  RunResult r = train("bad", {"model.config.router_policy=best_guess"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.err, "router_policy 'best_guess' is not known")) << r.err;
  r = train("bad2", {"model.config.router_policy=switch"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.err, "num_experts_per_tok to 1")) << r.err;
  r = train("bad3", {"train.balance_bias_rate=0.01"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.err, "router_selection_bias")) << r.err;
}

}  // namespace

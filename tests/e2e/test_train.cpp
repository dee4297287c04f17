// `moeforge train` as a user runs it: a recipe written by the test, synthetic text, a short
// run that ends with a JSON summary, a run directory (metrics, checkpoint, model, sample) and a
// model that `moeforge generate` loads; resuming; and clear errors for bad recipes and data.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_run.h"

namespace {
using namespace mf::test;

class Train : public ::testing::Test {
 protected:
  void SetUp() override {
    if (binary().empty()) GTEST_SKIP() << "MOEFORGE_BIN not set (run through ctest)";
    dir_ = fs::temp_directory_path() / ("moeforge_train_e2e_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream text(dir_ / "corpus.txt");
    for (int i = 0; i < 300; ++i) text << "to be or not to be, that is the question. " << (i % 7) << "\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write_recipe(const std::string& extra = "") {
    const fs::path p = dir_ / "recipe.yaml";
    std::ofstream(p) << "model:\n"
                        "  init: scratch\n"
                        "  config: {model_type: mixtral, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2,\n"
                        "           num_attention_heads: 4, num_key_value_heads: 2, num_local_experts: 4,\n"
                        "           num_experts_per_tok: 2, max_position_embeddings: 64, tie_word_embeddings: true}\n"
                        "tokenizer: char\n"
                        "data:\n"
                        "  train: corpus.txt\n"
                        "  valid_fraction: 0.1\n"
                        "train: {steps: 30, batch: 4, seq_len: 32, lr: 3.0e-3, warmup: 3, eval_every: 10,\n"
                        "        checkpoint_every: 10, eval_windows: 4}\n"
                        "output: " << (dir_ / "run").string() << "\n"
                     << "sample: {prompt: \"to be\", max_tokens: 20}\n"
                     << extra;
    return p;
  }
  fs::path dir_;
};

TEST_F(Train, HelpListsTheOptions) {
  auto r = run({"train", "--help"});
  EXPECT_EQ(r.rc, 0) << r.err;
  for (const char* opt : {"--set", "--max-steps", "--max-minutes", "--output", "--resume", "--device"})
    EXPECT_TRUE(has(r.out, opt)) << opt << "\n" << r.out;
}

TEST_F(Train, DeviceChoiceIsCheckedAndExplained) {
  auto bad = run({"train", write_recipe().string(), "--device", "tpu", "--quiet"});
  EXPECT_EQ(bad.rc, 2) << bad.err;  // a usage error
  EXPECT_TRUE(has(bad.err, "auto, cpu or cuda")) << bad.err;
  // --device cuda on a machine or build without a GPU stops at once and says why.
  auto cuda = run({"train", write_recipe().string(), "--device", "cuda", "--quiet"});
  if (cuda.rc == 0) GTEST_SKIP() << "this machine trained on a GPU";
  EXPECT_TRUE(has(cuda.err, "--device cuda:")) << cuda.err;
  EXPECT_FALSE(fs::exists(dir_ / "run" / "checkpoint.safetensors"));
}

TEST_F(Train, ShortRunEndsWithAJsonSummaryAndAUsableModel) {
  auto r = run({"train", write_recipe().string(), "--quiet"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["steps"], 30);
  EXPECT_LT(j["valid_loss"].get<double>(), 3.0);
  for (const char* f : {"metrics.jsonl", "checkpoint.safetensors", "sample.txt", "model/config.json",
                        "model/model.safetensors", "model/tokenizer_char.json"})
    EXPECT_TRUE(fs::exists(dir_ / "run" / f)) << f;
  EXPECT_TRUE(has(slurp(dir_ / "run" / "sample.txt"), "to be"));
  auto g = run({"generate", "-m", (dir_ / "run" / "model").string(), "-p", "to be", "--max-tokens", "10",
                "--temperature", "0"});
  EXPECT_EQ(g.rc, 0) << g.err;
  EXPECT_FALSE(g.out.empty());
  // --max-steps and --resume: continue the same run to 40 steps.
  auto r2 = run({"train", write_recipe().string(), "--quiet", "--resume", "--max-steps", "40"});
  ASSERT_EQ(r2.rc, 0) << r2.err;
  EXPECT_EQ(nlohmann::json::parse(r2.out)["steps"], 40);
}

// Every parallel loop of a training step is cut into pieces fixed by the shapes (the GEMMs' tiles,
// the loss's and the gradient norm's partial sums), so the thread count changes who computes a
// piece, never what it sums: a run is bit-reproducible on any machine and under any load.
TEST_F(Train, ResultsDoNotDependOnTheThreadCount) {
  const fs::path recipe = dir_ / "wide.yaml";
  std::ofstream(recipe) << "model:\n"
                           "  init: scratch\n"
                           "  config: {model_type: mixtral, hidden_size: 128, intermediate_size: 256, num_hidden_layers: 2,\n"
                           "           num_attention_heads: 4, num_key_value_heads: 2, num_local_experts: 4,\n"
                           "           num_experts_per_tok: 2, max_position_embeddings: 256, tie_word_embeddings: true}\n"
                           "tokenizer: char\n"
                           "data:\n"
                           "  train: corpus.txt\n"
                           "  valid_fraction: 0.1\n"
                           "train: {steps: 3, batch: 8, seq_len: 128, lr: 3.0e-3, warmup: 1, eval_every: 3,\n"
                           "        checkpoint_every: 0, eval_windows: 2}\n";
  std::vector<std::string> metrics;
  for (const char* threads : {"1", "3"}) {
    const fs::path out = dir_ / (std::string("threads") + threads);
    auto r = run({"train", recipe.string(), "-o", out.string(), "--quiet", "--threads", threads});
    ASSERT_EQ(r.rc, 0) << r.err;
    std::string steps;  // the per-step records without their timings
    std::istringstream lines(slurp(out / "metrics.jsonl"));
    for (std::string line; std::getline(lines, line);) {
      if (line.empty()) continue;
      auto j = nlohmann::json::parse(line);
      for (const char* timing : {"tokens_per_s", "elapsed_s", "step_s", "eta_s", "time"}) j.erase(timing);
      steps += j.dump() + "\n";
    }
    ASSERT_FALSE(steps.empty());
    metrics.push_back(steps);
  }
  EXPECT_EQ(metrics[0], metrics[1]);
}

TEST_F(Train, BadRecipesAndDataAreClearErrors) {
  auto r = run({"train", write_recipe("bogus: 1\n").string()});
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.err, "unknown key 'bogus'")) << r.err;
  r = run({"train", write_recipe().string(), "--set", "train.lrr=1"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.err, "unknown key 'train.lrr'")) << r.err;
  std::ofstream(dir_ / "bad.jsonl") << "{\"text\": \"fine\"}\n{\"text\": 3}\n";
  r = run({"train", write_recipe().string(), "--set", "data.train=bad.jsonl"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.err, "bad.jsonl:2")) << r.err;
  r = run({"train", write_recipe().string(), "--set", "freeze=[expertz]"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.err, "'expertz' matches no tensor")) << r.err;
  r = run({"train"});
  EXPECT_EQ(r.rc, 2);
}

}  // namespace

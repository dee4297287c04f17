// Supervised fine-tuning and per-domain evaluation through the CLI: a tiny model pretrained by
// the test, two domains of instruction records, `moeforge eval` before and after an SFT recipe
// shows the answer loss falling on both; the run resumes; bad records are reported
// at file:line or skipped when the recipe says so.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli_run.h"

namespace {
using namespace mf::test;

std::string shout(std::string s) {
  for (char& c : s) c = char(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

class Sft : public ::testing::Test {
 protected:
  void SetUp() override {
    if (binary().empty()) GTEST_SKIP() << "MOEFORGE_BIN not set (run through ctest)";
    dir_ = fs::temp_directory_path() / ("moeforge_sft_e2e_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const char* words[] = {"cat", "dog", "sun", "map", "red", "owl", "bee", "fig"};
    std::ofstream train(dir_ / "train.jsonl"), valid(dir_ / "valid.jsonl"), corpus(dir_ / "corpus.txt");
    // Every character the chat template and the records use appears in the pretraining text,
    // so the char tokenizer knows them all.
    corpus << "<|im_start|>system user assistant<|im_end|>\n ECHO SHOUT abcdefghijklmnopqrstuvwxyz "
              "ABCDEFGHIJKLMNOPQRSTUVWXYZ\n";
    for (int i = 0; i < 120; ++i) {
      const std::string w = std::string(words[i % 8]) + " " + words[(i * 3 + 1) % 8];
      nlohmann::json coder = {{"instruction", "echo " + w}, {"output", w}, {"domain", "Coder"}, {"source", "t"}};
      nlohmann::json writer = {{"instruction", "shout " + w}, {"output", shout(w)}, {"domain", "Writer"}, {"source", "t"}};
      (i < 100 ? train : valid) << coder.dump() << "\n" << writer.dump() << "\n";
      corpus << "the " << w << " and the " << words[(i * 5) % 8] << ".\n";
    }
  }
  void TearDown() override { if (!std::getenv("KEEP")) fs::remove_all(dir_); }

  // A small dense model with a char tokenizer, pretrained for a few steps on the corpus.
  fs::path base_model() {
    const fs::path p = dir_ / "pretrain.yaml";
    std::ofstream(p) << "model:\n  init: scratch\n"
                        "  config: {model_type: llama, hidden_size: 48, intermediate_size: 96, num_hidden_layers: 2,\n"
                        "           num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 128,\n"
                        "           tie_word_embeddings: true}\n"
                        "tokenizer: char\n"
                        "data: {train: corpus.txt, valid_fraction: 0.1}\n"
                        "train: {steps: 20, batch: 4, seq_len: 48, lr: 3.0e-3, warmup: 2, eval_windows: 2}\n"
                        "output: " << (dir_ / "pre").string() << "\n";
    auto r = run({"train", p.string(), "--quiet"});
    EXPECT_EQ(r.rc, 0) << r.err;
    return dir_ / "pre" / "model";
  }

  fs::path sft_recipe(const fs::path& model, const std::string& extra = "") {
    const fs::path p = dir_ / "sft.yaml";
    std::ofstream(p) << "model: {init: " << model.string() << "}\n"
                     << "tokenizer: model\n"
                        "data:\n  train: train.jsonl\n  valid: valid.jsonl\n" << extra
                     << "train: {steps: 40, batch: 8, seq_len: 96, lr: 5.0e-3, warmup: 2, weight_decay: 0.0,\n"
                        "        eval_every: 20, checkpoint_every: 20, eval_windows: 0}\n"
                        "output: " << (dir_ / "sft").string() << "\n";
    return p;
  }

  nlohmann::json eval(const fs::path& model, const std::string& name) {
    const fs::path out = dir_ / (name + ".json");
    auto r = run({"eval", "-m", model.string(), "--data", (dir_ / "valid.jsonl").string(), "--json", out.string(),
                  "--quiet"});
    EXPECT_EQ(r.rc, 0) << r.err;
    EXPECT_TRUE(has(r.out, "Coder") && has(r.out, "Writer") && has(r.out, "perplexity")) << r.out;
    const auto j = nlohmann::json::parse(slurp(out));
    nlohmann::json by_domain;
    for (const auto& row : j["domains"]) by_domain[row["domain"].get<std::string>()] = row;
    return by_domain;
  }

  fs::path dir_;
};

TEST_F(Sft, HelpListsTheOptions) {
  auto r = run({"eval", "--help"});
  EXPECT_EQ(r.rc, 0) << r.err;
  for (const char* opt : {"--model", "--data", "--domain", "--max-per-domain", "--json"})
    EXPECT_TRUE(has(r.out, opt)) << opt << "\n" << r.out;
}

TEST_F(Sft, FineTuningLowersTheAnswerLossOfEveryDomain) {
  const fs::path base = base_model();
  const auto before = eval(base, "before");
  ASSERT_EQ(before["all"]["examples"], 40);
  EXPECT_EQ(before["Coder"]["examples"], 20);

  // 20 steps, then resume to 40: the run continues from its checkpoint and data position.
  auto r = run({"train", sft_recipe(base).string(), "--quiet", "--max-steps", "20"});
  ASSERT_EQ(r.rc, 0) << r.err;
  r = run({"train", sft_recipe(base).string(), "--quiet", "--resume", "--max-steps", "40"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto summary = nlohmann::json::parse(r.out);
  EXPECT_EQ(summary["steps"], 40);
  EXPECT_GT(summary["peak_rss_mib"].get<double>(), 0.0);

  const auto after = eval(dir_ / "sft" / "model", "after");
  for (const char* d : {"Coder", "Writer"})
    EXPECT_LT(after[d]["loss"].get<double>(), 0.7 * before[d]["loss"].get<double>()) << d;
  EXPECT_EQ(after["all"]["answer_tokens"], before["all"]["answer_tokens"]);
}

TEST_F(Sft, OneDomainAndBadRecords) {
  const fs::path base = base_model();
  std::ofstream(dir_ / "train.jsonl", std::ios::app) << "{\"instruction\": \"echo x\"}\n";
  auto r = run({"train", sft_recipe(base).string(), "--quiet", "--max-steps", "2"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.err, "train.jsonl:201: missing field \"output\"")) << r.err;
  r = run({"train", sft_recipe(base, "  skip_bad: true\n  domains: [coder]\n").string(), "--max-steps", "2"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.err, "skipped 1 bad records")) << r.err;
  EXPECT_TRUE(has(r.err, "100 instruction examples")) << r.err;  // Coder only
  r = run({"eval", "-m", base.string(), "--data", (dir_ / "valid.jsonl").string(), "--domain", "Nobody"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.err, "no instruction records")) << r.err;
}

}  // namespace

// `moeforge perplexity` against the PyTorch computation of llama.cpp's method (gen_perplexity.py):
// the final figure, its error and every running estimate, for a MoE whose tokenizer adds BOS and
// a dense model whose tokenizer does not; the figure does not depend on the batch size (chunks side
// by side, or a chunk in slices); and the command's errors.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli_run.h"

namespace {
using namespace mf::test;

fs::path fixtures() {
  const char* d = std::getenv("MOEFORGE_FIXTURES");
  return d ? fs::path(d) : fs::path();
}

class Perplexity : public ::testing::Test {
 protected:
  void SetUp() override {
    if (binary().empty()) GTEST_SKIP() << "MOEFORGE_BIN not set (run through ctest)";
    if (!fs::exists(fixtures() / "expected.json")) GTEST_SKIP() << "no fixtures (gen_perplexity.py writes them)";
    expected_ = nlohmann::json::parse(slurp(fixtures() / "expected.json"));
  }

  nlohmann::json measure(const std::string& name, const std::vector<std::string>& extra = {}) {
    const nlohmann::json& e = expected_[name];
    std::vector<std::string> args{"perplexity", "-m", (fixtures() / name).string(), "-f",
                                  (fixtures() / "text.txt").string(), "-c", std::to_string(e["n_ctx"].get<int>()),
                                  "--json", "--quiet"};
    if (e["max_chunks"].get<int>() > 0) args.insert(args.end(), {"--chunks", std::to_string(e["max_chunks"].get<int>())});
    args.insert(args.end(), extra.begin(), extra.end());
    const RunResult r = run(args);
    EXPECT_EQ(r.rc, 0) << r.err;
    return r.rc == 0 ? nlohmann::json::parse(r.out) : nlohmann::json::object();
  }

  void expect_matches_reference(const std::string& name, const nlohmann::json& got) {
    const nlohmann::json& e = expected_[name];
    ASSERT_TRUE(got.contains("ppl")) << name;
    EXPECT_EQ(got["text_tokens"], e["text_tokens"]) << name << ": tokenized differently";
    EXPECT_EQ(got["chunks"], e["chunks"]) << name;
    EXPECT_EQ(got["scored_tokens"], e["scored"]) << name;
    EXPECT_EQ(got["add_bos"], e["add_bos"]) << name;
    // fp32 forward passes on both sides: the figures agree to ~1e-6 relative; 1e-5 is the bound.
    EXPECT_NEAR(got["ppl"].get<double>(), e["ppl"].get<double>(), 1e-5 * e["ppl"].get<double>()) << name;
    EXPECT_NEAR(got["ppl_error"].get<double>(), e["ppl_error"].get<double>(), 1e-4 * e["ppl_error"].get<double>())
        << name;
    const auto& running = got["running_ppl"];
    ASSERT_EQ(running.size(), e["running"].size()) << name;
    for (size_t i = 0; i < running.size(); ++i)
      EXPECT_NEAR(running[i].get<double>(), e["running"][i].get<double>(), 1e-5 * e["running"][i].get<double>())
          << name << " chunk " << i + 1;
  }

  nlohmann::json expected_;
};

TEST_F(Perplexity, MoeWithBosMatchesPyTorch) { expect_matches_reference("moe_bos", measure("moe_bos")); }

TEST_F(Perplexity, DenseWithoutBosAndAChunkLimitMatchesPyTorch) {
  expect_matches_reference("dense_no_bos", measure("dense_no_bos"));
}

TEST_F(Perplexity, TheFigureDoesNotDependOnTheBatchSize) {
  const int n_ctx = expected_["moe_bos"]["n_ctx"];
  // Three chunks side by side per pass, and each chunk in slices of 10 tokens.
  for (const int batch : {3 * n_ctx, 10}) {
    SCOPED_TRACE("-b " + std::to_string(batch));
    expect_matches_reference("moe_bos", measure("moe_bos", {"-b", std::to_string(batch)}));
  }
}

TEST_F(Perplexity, PrintsRunningEstimatesAndTheFinalLineAsLlamaCpp) {
  const RunResult r = run({"perplexity", "-m", (fixtures() / "dense_no_bos").string(), "-f",
                           (fixtures() / "text.txt").string(), "-c", "24", "--chunks", "3"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.out, "[1]")) << r.out;
  EXPECT_TRUE(has(r.out, "[3]")) << r.out;
  EXPECT_TRUE(has(r.out, "Final estimate: PPL = ")) << r.out;
  EXPECT_TRUE(has(r.err, "ETA")) << r.err;  // the progress line
}

TEST_F(Perplexity, ErrorsNameTheProblem) {
  const std::string model = (fixtures() / "dense_no_bos").string();
  const fs::path short_text = fs::temp_directory_path() / ("moeforge_ppl_short_" + std::to_string(::getpid()) + ".txt");
  std::ofstream(short_text) << "too short a text";
  auto r = run({"perplexity", "-m", model, "-f", short_text.string(), "-c", "24"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.err, short_text.string()) && has(r.err, "needs at least 48")) << r.err;
  std::ofstream(short_text, std::ios::binary) << std::string("text\0with a NUL", 15);
  r = run({"perplexity", "-m", model, "-f", short_text.string()});
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.err, "binary")) << r.err;
  fs::remove(short_text);
  r = run({"perplexity", "-m", model, "-f", (fixtures() / "text.txt").string(), "-c", "1000"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.err, "more than the model's 128")) << r.err;
  r = run({"perplexity", "-m", model, "-f", (fixtures() / "text.txt").string(), "-c", "2"});
  EXPECT_EQ(r.rc, 2) << r.err;
  r = run({"perplexity", "--help"});
  EXPECT_EQ(r.rc, 0);
  for (const char* opt : {"--ctx-size", "-c", "--chunks", "--batch-size", "--threads", "--json"})
    EXPECT_TRUE(has(r.out, opt)) << opt;
}

}  // namespace

// Runs the built moeforge binary ($MOEFORGE_BIN) and checks exit codes and output.
#include <gtest/gtest.h>

#include "cli_run.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace {
namespace fs = std::filesystem;
using namespace mf::test;


class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (binary().empty()) GTEST_SKIP() << "MOEFORGE_BIN not set (run through ctest)";
  }
};

TEST_F(Cli, UsageVersionAndUnknownCommand) {
  auto r = run({});
  EXPECT_EQ(r.rc, 2);
  EXPECT_TRUE(has(r.err, "usage: moeforge")) << r.err;
  r = run({"--version"});
  EXPECT_EQ(r.rc, 0);
  EXPECT_TRUE(has(r.out, "moeforge 0.")) << r.out;
  r = run({"frobnicate"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_TRUE(has(r.err, "unknown command 'frobnicate'")) << r.err;
  EXPECT_TRUE(has(r.err, "usage: moeforge")) << r.err;
}

TEST_F(Cli, EverySubcommandHasHelp) {
  for (std::string cmd : {"info", "generate", "chat"}) {
    auto r = run({cmd, "--help"});
    EXPECT_EQ(r.rc, 0) << cmd;
    EXPECT_TRUE(has(r.out, "usage: moeforge " + cmd)) << r.out;
    EXPECT_TRUE(has(r.out, "--model")) << r.out;
  }
  for (std::string cmd : {"train", "plot"}) {
    auto r = run({cmd, "--help"});
    EXPECT_EQ(r.rc, 0) << cmd;
    EXPECT_TRUE(has(r.out, "usage: moeforge " + cmd)) << r.out;
  }
  // Every command's help ends with examples; the shared flags are grouped.
  for (std::vector<std::string> cmd :
       std::vector<std::vector<std::string>>{{"generate"}, {"chat"}, {"train"}, {"fuse"}, {"upcycle"}, {"serve"},
                                             {"convert"}, {"perplexity"}, {"inspect"}, {"eval"}, {"info"},
                                             {"compare"}, {"plot"}, {"data", "convert"}, {"data", "mix"},
                                             {"data", "stats"}}) {
    cmd.push_back("--help");
    auto r = run(cmd);
    EXPECT_EQ(r.rc, 0) << cmd[0];
    EXPECT_TRUE(has(r.out, "\nexamples:\n  moeforge " + cmd[0]) || has(r.out, "\nexamples:\n  mpirun")) << r.out;
  }
  auto r = run({"generate", "--help"});
  EXPECT_TRUE(has(r.out, "\nsampling (")) << r.out;
  EXPECT_TRUE(has(r.out, "\nruntime:\n")) << r.out;
  for (std::string flag : {"--temperature", "--top-k", "--top-p", "--min-p", "--repeat-penalty", "--seed",
                           "--max-tokens", "--system", "--stop", "--threads", "--ctx", "--chat"})
    EXPECT_TRUE(has(r.out, flag)) << flag;
}

TEST_F(Cli, BadFlagsAreUsageErrors) {
  auto r = run({"generate", "-m", "x.gguf", "-p", "hi", "--bogus"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_TRUE(has(r.err, "unknown option '--bogus'")) << r.err;
  r = run({"chat", "-m", "x.gguf", "--temperature", "hot"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_TRUE(has(r.err, "--temperature: expected a number, got 'hot'")) << r.err;
  r = run({"generate", "-p", "hi"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_TRUE(has(r.err, "missing required option -m/--model")) << r.err;
  r = run({"generate", "-m", "x.gguf", "-p", "hi", "--top-p", "2"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_TRUE(has(r.err, "top_p")) << r.err;
  r = run({"info", "-m", "/definitely/not/here"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.err, "/definitely/not/here: no such file or directory")) << r.err;
}

TEST_F(Cli, LlamaCppFlagSpellingsAndTypoSuggestions) {
  auto r = run({"generate", "-m", "x.gguf", "-p", "hi", "--temprature", "0"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_TRUE(has(r.err, "did you mean --temperature?")) << r.err;
  r = run({"generate", "--help"});
  for (std::string spelled : {"--max-tokens, -n, --n-predict", "--temperature, --temp", "--system, -sys", "--seed, -s",
                              "--threads, -t", "--ctx, -c, --ctx-size"})
    EXPECT_TRUE(has(r.out, spelled)) << spelled << "\n" << r.out;
  r = run({"serve", "--help"});
  EXPECT_TRUE(has(r.out, "--parallel, -np")) << r.out;
  // The aliases parse: a bad value is reported under the option's own name.
  r = run({"generate", "-m", "x.gguf", "-p", "hi", "-n", "many"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_TRUE(has(r.err, "--max-tokens: expected an integer, got 'many'")) << r.err;
}

// A corpus and a recipe for a tiny char-level model in `dir`: `train_keys` is the recipe's
// train mapping, `extra` more top-level lines (e.g. "output: run\n").
void write_tiny_recipe(const fs::path& dir, const std::string& train_keys, const std::string& extra = "") {
  fs::create_directories(dir);
  {
    std::ofstream corpus(dir / "c.txt");
    for (int i = 0; i < 100; ++i) corpus << "the river ran past the mill. bakers sold bread.\n";
  }
  std::ofstream(dir / "r.yaml") << "model:\n  init: scratch\n"
                                   "  config: {model_type: llama, hidden_size: 32, intermediate_size: 64, "
                                   "num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 2, "
                                   "max_position_embeddings: 128, tie_word_embeddings: true}\n"
                                   "tokenizer: char\n"
                                   "data: {train: c.txt, valid_fraction: 0.1}\n"
                                   "train: {" + train_keys + "}\n" + extra;
}

TEST_F(Cli, DashOStandsForTheRecipesOutputAndPositionalsGoAnywhere) {
  const fs::path dir = fs::temp_directory_path() / ("moeforge_cli_o_" + std::to_string(::getpid()));
  // No 'output' key: the recipe alone is refused, with -o it runs there.
  write_tiny_recipe(dir, "steps: 2, batch: 2, seq_len: 16, eval_windows: 1");
  auto r = run({"train", (dir / "r.yaml").string(), "--quiet"});
  EXPECT_NE(r.rc, 0);
  EXPECT_TRUE(has(r.err, "'output' (the run directory) is required")) << r.err;
  // The recipe may stand after the options, as people type it.
  r = run({"train", "-o", (dir / "run").string(), "--max-steps", "2", "--quiet", (dir / "r.yaml").string()});
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir / "run" / "model" / "config.json"));
  r = run({"compare", "--markdown", (dir / "run").string()});
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.out, "|")) << r.out;
  r = run({"train", "--quiet"});
  EXPECT_NE(r.rc, 0);
  EXPECT_TRUE(has(r.err, "missing RECIPE.yaml")) << r.err;
  fs::remove_all(dir);
}

// A tiny char-level model trained in a second; returns its HF directory.
fs::path train_tiny_model(const fs::path& dir) {
  write_tiny_recipe(dir, "steps: 3, batch: 2, seq_len: 16, eval_windows: 1");
  const auto r = run({"train", (dir / "r.yaml").string(), "-o", (dir / "run").string(), "--quiet"});
  EXPECT_EQ(r.rc, 0) << r.err;
  return dir / "run" / "model";
}

TEST_F(Cli, SamplingDefaultsComeFromGenerationConfigAndTheSeedIsRandomUnlessGiven) {
  const fs::path dir = fs::temp_directory_path() / ("moeforge_cli_gc_" + std::to_string(::getpid()));
  const fs::path model = train_tiny_model(dir);
  const std::string m = model.string();
  // No generation_config.json: sampling, with a random seed that --verbose shows and --seed repeats.
  fs::remove(model / "generation_config.json");
  auto a = run({"generate", "-m", m, "-p", "the river", "-n", "24", "--verbose"});
  ASSERT_EQ(a.rc, 0) << a.err;
  EXPECT_TRUE(has(a.err, "temperature 0.7")) << a.err;
  const size_t at = a.err.find("--seed ");
  ASSERT_NE(at, std::string::npos) << a.err;
  const std::string seed = a.err.substr(at + 7, a.err.find(' ', at + 7) - at - 7);
  auto again = run({"generate", "-m", m, "-p", "the river", "-n", "24", "--seed", seed});
  ASSERT_EQ(again.rc, 0) << again.err;
  EXPECT_EQ(again.out, a.out) << "--seed " << seed << " did not repeat the run";
  // The author's do_sample: false means greedy unless a flag says otherwise.
  std::ofstream(model / "generation_config.json") << R"({"do_sample": false, "max_new_tokens": 5})";
  auto g = run({"generate", "-m", m, "-p", "the river", "--verbose"});
  ASSERT_EQ(g.rc, 0) << g.err;
  EXPECT_TRUE(has(g.err, "temperature 0,")) << g.err;
  EXPECT_TRUE(has(g.err, "max-tokens 5 (defaults from")) << g.err;
  EXPECT_TRUE(has(g.err, "decode: 5 tokens") || has(g.err, "decode: 4 tokens")) << g.err;
  auto flag = run({"generate", "-m", m, "-p", "the river", "--temp", "0.9", "--verbose"});
  EXPECT_TRUE(has(flag.err, "temperature 0.9")) << flag.err;
  // A bad value in the model's file is an error naming the file.
  std::ofstream(model / "generation_config.json") << R"({"do_sample": true, "top_p": 7})";
  auto bad = run({"generate", "-m", m, "-p", "the river"});
  EXPECT_NE(bad.rc, 0);
  EXPECT_TRUE(has(bad.err, "generation_config.json")) << bad.err;
  EXPECT_TRUE(has(bad.err, "top_p")) << bad.err;
  // -f reads the prompt from a file, as llama.cpp's -f does.
  fs::remove(model / "generation_config.json");
  std::ofstream(dir / "prompt.txt") << "the river";
  auto from_file = run({"generate", "-m", m, "-f", (dir / "prompt.txt").string(), "-n", "8", "--temp", "0"});
  auto from_flag = run({"generate", "-m", m, "-p", "the river", "-n", "8", "--temp", "0"});
  ASSERT_EQ(from_file.rc, 0) << from_file.err;
  EXPECT_EQ(from_file.out, from_flag.out);
  auto both = run({"generate", "-m", m, "-f", (dir / "prompt.txt").string(), "-p", "x"});
  EXPECT_EQ(both.rc, 2);
  EXPECT_TRUE(has(both.err, "-p TEXT or -f FILE")) << both.err;
  fs::remove_all(dir);
}

TEST_F(Cli, TrainingTalksInLinesWhenStderrIsALog) {
  const fs::path dir = fs::temp_directory_path() / ("moeforge_cli_talk_" + std::to_string(::getpid()));
  write_tiny_recipe(dir, "steps: 200, batch: 2, seq_len: 16, eval_windows: 1, eval_every: 20, warmup: 50, "
                         "checkpoint_every: 20", "output: " + (dir / "run").string() + "\n");
  // stderr is a pipe here, as in a log file: plain lines, no carriage returns.
  auto r = run({"train", (dir / "r.yaml").string(), "--max-steps", "40"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.err.find('\r'), std::string::npos) << r.err;
  EXPECT_TRUE(has(r.err, "[40/40] loss")) << r.err;
  EXPECT_TRUE(has(r.err, "step 20: train ")) << r.err;
  EXPECT_TRUE(has(r.err, "step 40: train ")) << r.err;
  EXPECT_TRUE(has(r.err, ", val ")) << r.err;
  EXPECT_TRUE(has(r.err, "inside its 50 warmup steps")) << r.err;
  EXPECT_TRUE(has(r.err, "trained 40 steps in")) << r.err;
  EXPECT_TRUE(has(r.err, "best val ")) << r.err;
  EXPECT_TRUE(has(r.err, "model: ")) << r.err;
  // About 20 progress lines for a run, not one per step.
  size_t lines = 0;
  for (size_t at = r.err.find("] loss "); at != std::string::npos; at = r.err.find("] loss ", at + 1)) ++lines;
  EXPECT_LE(lines, 25u) << r.err;
  EXPECT_GE(lines, 2u) << r.err;
  // Resuming says from where; past the warmup there is no warning.
  r = run({"train", (dir / "r.yaml").string(), "--resume", "--max-steps", "60"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.err, "resuming from step 40 of 60")) << r.err;
  EXPECT_FALSE(has(r.err, "warmup steps")) << r.err;
  // --quiet keeps only what must be said.
  r = run({"train", (dir / "r.yaml").string(), "--resume", "--max-steps", "61", "--quiet"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_FALSE(has(r.err, "] loss ")) << r.err;
  EXPECT_FALSE(has(r.err, "trained ")) << r.err;
  fs::remove_all(dir);
}

TEST_F(Cli, HfDirectoryWithoutTokenizerIsAClearError) {
  fs::path dir = fs::temp_directory_path() / ("moeforge_notok_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << R"({"model_type": "llama", "vocab_size": 16})";
  auto r = run({"generate", "-m", dir.string(), "-p", "hi"});
  fs::remove_all(dir);
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.err, "no tokenizer.json")) << r.err;
  EXPECT_TRUE(has(r.err, dir.string())) << r.err;
}

class SmolLM2 : public Cli {
 protected:
  void SetUp() override {
    Cli::SetUp();
    if (IsSkipped()) return;
    const char* home = std::getenv("HOME");
    gguf_ = std::string(home ? home : "") + "/.cache/moeforge/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (!fs::exists(gguf_)) GTEST_SKIP() << "SmolLM2 GGUF not cached at " << gguf_ << " (scripts fetch it)";
  }
  // A build without the model/io modules says so; that is a skip, not a pass.
  void skip_if_unbuilt(const RunResult& r) {
    if (r.rc != 0 && has(r.err, "this build has no")) GTEST_SKIP() << r.err;
  }
  std::string gguf_;
};

TEST_F(SmolLM2, Info) {
  auto r = run({"info", "-m", gguf_});
  skip_if_unbuilt(r);
  if (IsSkipped()) return;
  ASSERT_EQ(r.rc, 0) << r.err;
  for (std::string line : {"format: gguf", "architecture: llama", "layers: 30", "hidden size: 576",
                           "attention heads: 9", "kv heads: 3", "vocab size: 49152", "context length: 8192",
                           "experts: none (dense)", "tokenizer: bpe, 49152 tokens", "chat template: chatml", "Q4_1"})
    EXPECT_TRUE(has(r.out, line)) << line << "\n" << r.out;
}

TEST_F(SmolLM2, GreedyChatAnswerMentionsParis) {
  auto r = run({"generate", "-m", gguf_, "--chat", "-p", "What is the capital of France?", "--temperature", "0",
                "--max-tokens", "40"});
  skip_if_unbuilt(r);
  if (IsSkipped()) return;
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.out, "Paris")) << r.out;
  EXPECT_FALSE(has(r.out, "<|im_end|>")) << r.out;
  EXPECT_TRUE(has(r.err, "decode:")) << r.err;
  EXPECT_TRUE(has(r.err, "tok/s")) << r.err;
}

// A 16-bit KV cache (llama.cpp's -ctk/-ctv): the greedy chat answer survives the rounding, --verbose
// says which cache ran, and a type the cache cannot store is a usage error naming the flag.
TEST_F(SmolLM2, HalfPrecisionKVCache) {
  auto r = run({"generate", "-m", gguf_, "--chat", "-p", "What is the capital of France?", "--temp", "0", "-n", "40",
                "-ctk", "f16", "-ctv", "bf16", "--verbose"});
  skip_if_unbuilt(r);
  if (IsSkipped()) return;
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.out, "Paris")) << r.out;
  EXPECT_TRUE(has(r.err, "KV cache F16 keys, BF16 values")) << r.err;
  auto bad = run({"generate", "-m", gguf_, "-p", "hi", "--cache-type-k", "q4_0"});
  EXPECT_EQ(bad.rc, 2);
  EXPECT_TRUE(has(bad.err, "--cache-type-k: 'q4_0' is not a KV cache type")) << bad.err;
}

TEST_F(SmolLM2, LlamaCppSpellingsGiveTheSameAnswer) {
  auto a = run({"generate", "-m", gguf_, "-p", "The capital of France is", "--temperature", "0", "--max-tokens", "8"});
  skip_if_unbuilt(a);
  if (IsSkipped()) return;
  auto b = run({"generate", "-m", gguf_, "-p", "The capital of France is", "--temp", "0", "-n", "8", "-t", "2"});
  ASSERT_EQ(a.rc, 0) << a.err;
  ASSERT_EQ(b.rc, 0) << b.err;
  EXPECT_EQ(a.out, b.out);
}

TEST_F(SmolLM2, PipedChatTwoTurns) {
  auto r = run({"chat", "-m", gguf_, "--temperature", "0", "--max-tokens", "30"},
               "What is the capital of France?\nRepeat the name of that city.\n");
  skip_if_unbuilt(r);
  if (IsSkipped()) return;
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.out, "Paris")) << r.out;
  EXPECT_FALSE(has(r.out, "> ")) << "prompt characters in piped output:\n" << r.out;
  int lines = 0;
  for (char c : r.out) lines += c == '\n';
  EXPECT_GE(lines, 2) << r.out;
}

}  // namespace

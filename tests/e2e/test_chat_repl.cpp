// `moeforge chat` as a person uses it: chat_pty.py drives the real binary through a real
// pseudo-terminal (Ctrl-C during an answer and at the prompt, history, multi-line input,
// /save and /load) over a model this test trains. Also the one-line notice --show-experts gives
// on a dense model.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "cli_run.h"

namespace {
using namespace mf::test;

class ChatRepl : public ::testing::Test {
 protected:
  void SetUp() override {
    if (binary().empty()) GTEST_SKIP() << "MOEFORGE_BIN not set (run through ctest)";
    work_ = fs::temp_directory_path() / ("moeforge_chat_repl_" + std::to_string(::getpid()));
    fs::create_directories(work_);
  }
  void TearDown() override { fs::remove_all(work_); }

  // A dense char-level model trained a little, so that greedy answers are text. Its documents
  // are one file, so end-of-text is rare and answers run to --max-tokens. `wide`: wide enough
  // that an answer of thousands of tokens takes seconds (time to press Ctrl-C in the middle).
  fs::path train_model(bool wide) {
    {
      std::ofstream corpus(work_ / "c.txt");
      for (int i = 0; i < 200; ++i) corpus << "the river ran past the mill. bakers sold bread at dawn.\n";
    }
    std::ofstream(work_ / "r.yaml") << "model:\n  init: scratch\n"
                                    << (wide ? "  config: {model_type: llama, hidden_size: 256, intermediate_size: 768, "
                                               "num_hidden_layers: 4, "
                                             : "  config: {model_type: llama, hidden_size: 32, intermediate_size: 64, "
                                               "num_hidden_layers: 1, ")
                                    << "num_attention_heads: 4, num_key_value_heads: 2, "
                                       "max_position_embeddings: 4096, tie_word_embeddings: true}\n"
                                       "tokenizer: char\n"
                                       "data: {train: c.txt, valid_fraction: 0.1}\n"
                                       "train: {steps: 8, batch: 4, seq_len: 64, lr: 3e-3, warmup: 2, eval_windows: 1}\n";
    const RunResult r = run({"train", (work_ / "r.yaml").string(), "-o", (work_ / "run").string(), "--quiet"});
    EXPECT_EQ(r.rc, 0) << r.err;
    return work_ / "run" / "model";
  }

  fs::path work_;
};

TEST_F(ChatRepl, KeyboardSessionThroughAPseudoTerminal) {
  const std::string python = std::getenv("MOEFORGE_PYTHON") ? std::getenv("MOEFORGE_PYTHON") : "/usr/bin/python3";
  const fs::path model = train_model(/*wide=*/true);
  ASSERT_TRUE(fs::exists(model / "config.json"));
  const std::string script = std::string(std::getenv("MOEFORGE_SOURCE_DIR")) + "/tests/e2e/chat_pty.py";
  const RunResult r = run_shell(quote(python) + " " + quote(script) + " " + quote(binary()) + " " +
                                quote(model.string()) + " " + quote((work_ / "pty").string()));
  std::cout << r.out;
  if (r.rc == 77) GTEST_SKIP() << r.out;  // chat_pty.py found no pseudo-terminal to open
  EXPECT_EQ(r.rc, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "editing: ok")) << r.out;
  EXPECT_TRUE(has(r.out, "interrupting: ok")) << r.out;
}

TEST_F(ChatRepl, ShowExpertsOnADenseModelSaysSoOnce) {
  const fs::path model = train_model(/*wide=*/false);
  const RunResult r = run({"chat", "-m", model.string(), "--show-experts", "--temperature", "0", "-n", "8"},
                          "the river\nthe mill\n");
  ASSERT_EQ(r.rc, 0) << r.err;
  const std::string notice = "is a dense model (no experts)";
  const size_t at = r.err.find(notice);
  ASSERT_NE(at, std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(notice, at + 1), std::string::npos) << "said more than once:\n" << r.err;
  // Piped chat still prints the answers only, one per line.
  int lines = 0;
  for (char c : r.out) lines += c == '\n';
  EXPECT_GE(lines, 2) << r.out;
  EXPECT_EQ(r.out.find("> "), std::string::npos) << r.out;
}

}  // namespace

// Llama-2 / TinyLlama / Mistral checkpoints with SentencePiece tokenizers, end to end through the
// CLI: gen_spm_tokenizer.py --model-dir trains a small SentencePiece BPE (Llama-2's settings) and
// writes its tokenizer.json / tokenizer.model; spm_llama_check.py makes random tiny Llama and
// Mistral (sliding window) models with transformers and compares perplexity and greedy text.
// Skips, saying why, without the interop environment (scripts/setup-interop.sh).
#include <gtest/gtest.h>

#include "cli_run.h"

namespace {
using namespace mf::test;

std::string interop_python() {
  if (const char* p = std::getenv("MOEFORGE_INTEROP_PYTHON")) return p;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "") + "/.cache/moeforge/interop-venv/bin/python";
}

TEST(SpmLlama, LlamaAndMistralWithSentencePieceMatchTransformers) {
  if (binary().empty()) GTEST_SKIP() << "MOEFORGE_BIN not set (run through ctest)";
  const std::string python = interop_python();
  if (!fs::exists(python) || run_shell(quote(python) + " -c 'import transformers, tokenizers, torch'").rc != 0)
    GTEST_SKIP() << "transformers is not installed in " << python << " (scripts/setup-interop.sh installs it)";
  const std::string system_python = std::getenv("MOEFORGE_PYTHON") ? std::getenv("MOEFORGE_PYTHON") : "";
  if (run_shell(quote(system_python) + " -c 'import sentencepiece, tokenizers'").rc != 0)
    GTEST_SKIP() << "sentencepiece is not installed for " << system_python << " (scripts/setup.sh installs it)";
  const fs::path dir = fs::temp_directory_path() / ("moeforge_spm_llama_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "models");
  const std::string src = std::getenv("MOEFORGE_SOURCE_DIR");
  RunResult r = run_shell(quote(system_python) + " " + quote(src + "/tests/reference/gen_spm_tokenizer.py") +
                          " --model-dir " + quote((dir / "tok").string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  r = run_shell(quote(python) + " " + quote(src + "/tests/e2e/spm_llama_check.py") + " " +
                quote((dir / "tok").string()) + " " + quote((dir / "models").string()));
  std::cout << r.out;
  EXPECT_EQ(r.rc, 0) << r.err;
  fs::remove_all(dir);
}

}  // namespace

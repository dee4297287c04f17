// llama.cpp reads moeforge's SentencePiece GGUF export as moeforge does: gen_spm_gguf.py makes a
// tiny Llama with a SentencePiece BPE tokenizer and `moeforge convert`s it; this test tokenizes
// the texts with the GGUF's tokenizer as moeforge loads it (and checks it against the HF
// tokenizer.json the model came from), then check_llama_cpp_spm.py tokenizes them with
// llama.cpp. Skips, saying why, without llama-cpp-python (scripts/setup-interop.sh).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli_run.h"
#include "infer/model_files.h"
#include "tokenizer/tokenizer.h"

namespace {
using namespace mf::test;

std::string interop_python() {
  if (const char* p = std::getenv("MOEFORGE_INTEROP_PYTHON")) return p;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "") + "/.cache/moeforge/interop-venv/bin/python";
}

TEST(SpmGguf, LlamaCppTokenizesTheExportAsMoeforge) {
  const fs::path fx = std::getenv("MOEFORGE_FIXTURES");
  ASSERT_TRUE(fs::exists(fx / "spm.gguf")) << "gen_spm_gguf.py did not run";
  const mf::TokenizerFiles gguf = mf::load_gguf_tokenizer_files((fx / "spm.gguf").string());
  const auto hf = mf::load_hf_tokenizer((fx / "model" / "tokenizer.json").string());
  ASSERT_EQ(gguf.tokenizer->kind, "spm");
  const auto texts = nlohmann::json::parse(slurp(fx / "texts.json")).get<std::vector<std::string>>();
  ASSERT_GT(texts.size(), 40u);
  nlohmann::json ids = nlohmann::json::array();
  for (const std::string& t : texts) {
    const auto mine = mf::encode_for_model(*gguf.tokenizer, t);
    EXPECT_EQ(mine, mf::encode_for_model(*hf, t)) << "GGUF and tokenizer.json differ for [" << t.substr(0, 80) << "]";
    ids.push_back(mine);
  }
  const std::string python = interop_python();
  if (!fs::exists(python) || run_shell(quote(python) + " -c 'import llama_cpp'").rc != 0)
    GTEST_SKIP() << "llama-cpp-python is not installed (scripts/setup-interop.sh installs it)";
  const fs::path ids_path = fs::temp_directory_path() / ("moeforge_spm_ids_" + std::to_string(::getpid()) + ".json");
  std::ofstream(ids_path) << ids.dump();
  const std::string script = std::string(std::getenv("MOEFORGE_SOURCE_DIR")) + "/tests/interop/check_llama_cpp_spm.py";
  const RunResult r = run_shell(quote(python) + " " + quote(script) + " " + quote((fx / "spm.gguf").string()) + " " +
                                quote((fx / "texts.json").string()) + " " + quote(ids_path.string()));
  fs::remove(ids_path);
  std::cout << r.out;
  EXPECT_EQ(r.rc, 0) << r.err;
}

}  // namespace

// The tools people load moeforge's files with run them unchanged: llama.cpp (through
// llama-cpp-python) every GGUF type moeforge exports, dense and MoE, and the real SmolLM2 GGUF,
// and moeforge's K-quant files match llama.cpp's own quantizer in types and error;
// transformers the HF directories, dense and MoE, and moeforge the directories transformers saves
// (scripts/setup-interop.sh installs both). The
// checks and their tolerances are in check_llama_cpp.py, check_llama_quantize.py and
// check_transformers.py; this test
// runs them once per file and shows their figures. Skips, saying why, where a tool is missing.
#include <gtest/gtest.h>

#include "cli_run.h"

namespace {
using namespace mf::test;

std::string interop_python() {
  if (const char* p = std::getenv("MOEFORGE_INTEROP_PYTHON")) return p;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "") + "/.cache/moeforge/interop-venv/bin/python";
}

// Runs tests/interop/CHECK NAME with the interop Python, or skips when it lacks `module`.
void run_check(const std::string& module, const std::string& check, const std::string& name) {
  const std::string python = interop_python();
  if (!fs::exists(python) || run_shell(quote(python) + " -c 'import " + module + "'").rc != 0)
    GTEST_SKIP() << module << " is not installed (scripts/setup-interop.sh installs it)";
  const fs::path manifest = fs::path(std::getenv("MOEFORGE_FIXTURES")) / "manifest.json";
  ASSERT_TRUE(fs::exists(manifest)) << "gen_anchors.py did not run";
  if (name == "smollm2-q4_1" && !has(slurp(manifest), "smollm2-q4_1"))
    GTEST_SKIP() << "SmolLM2 is not in ~/.cache/moeforge (scripts/fetch-smollm2.sh)";
  const std::string script = std::string(std::getenv("MOEFORGE_SOURCE_DIR")) + "/tests/interop/" + check;
  const RunResult r = run_shell(quote(python) + " " + quote(script) + " " + quote(manifest.string()) + " " + name);
  std::cout << r.out;
  EXPECT_EQ(r.rc, 0) << r.err;
}

std::string test_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string n = info.param;
  for (char& c : n)
    if (c == '-') c = '_';
  return n;
}

class TransformersSaved : public ::testing::TestWithParam<std::string> {};

TEST_P(TransformersSaved, LoadsInMoeforgeAsTheSameModel) {
  run_check("transformers", "check_transformers_saved.py", GetParam());
}

INSTANTIATE_TEST_SUITE_P(DirectoriesTransformersSaves, TransformersSaved,
                         ::testing::Values("mixtral-saved", "qwen2-moe-saved"), test_name);

class LlamaCpp : public ::testing::TestWithParam<std::string> {};

TEST_P(LlamaCpp, LoadsAndAgreesWithMoeforge) { run_check("llama_cpp", "check_llama_cpp.py", GetParam()); }

class Transformers : public ::testing::TestWithParam<std::string> {};

TEST_P(Transformers, LoadsWithNoMissingWeightsAndAgreesWithMoeforge) {
  run_check("transformers", "check_transformers.py", GetParam());
}

INSTANTIATE_TEST_SUITE_P(MoeforgeHfDirectories, Transformers, ::testing::Values("dense-hf", "moe-hf", "trained-a-hf", "trained-b-hf", "fused-hf",
                                                           "shared-dense-hf", "switch-hf", "expert-choice-hf"),
                         test_name);

INSTANTIATE_TEST_SUITE_P(EveryGgufTypeMoeforgeWrites, LlamaCpp,
                         ::testing::Values("dense-f32", "dense-q8_0", "moe-f32", "moe-f16", "moe-bf16", "moe-q8_0",
                                           "moe-q4_0", "moe-q4_1", "kq-dense-f32", "kq-dense-q4_K_M", "kq-dense-q6_K",
                                           "kq-moe-f32", "kq-moe-q4_K_M", "kq-moe-q6_K", "fused-f32", "fused-q8_0",
                                           "smollm2-q4_1"),
                         test_name);

// moeforge's K-quant files against llama.cpp's own quantizer on the same f32 file: the same
// type for every tensor, and no more quantization error (check_llama_quantize.py).
class LlamaQuantize : public ::testing::TestWithParam<std::string> {};

TEST_P(LlamaQuantize, SameTensorTypesAndNoMoreErrorThanLlamaCpp) {
  run_check("llama_cpp", "check_llama_quantize.py", GetParam());
}

INSTANTIATE_TEST_SUITE_P(KQuantMixes, LlamaQuantize,
                         ::testing::Values("kq-dense-q4_K_M", "kq-dense-q6_K", "kq-moe-q4_K_M", "kq-moe-q6_K",
                                           "kq-moe8-q4_K_M"),
                         test_name);

}  // namespace

// GGUF export of a Mixtral-layout MoE (and of a dense model): the `gguf` package reads the keys,
// tokenizer, chat template, tensor names, types and shapes llama.cpp expects
// (check_gguf_export.py); moeforge reloads an F32 export with bit-identical logits and a Q8_0
// export within quantization error; a tokenizer.json converts back to the same vocabulary.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "model/gguf_export.h"
#include "model/init.h"
#include "model/kv_cache.h"
#include "model/load.h"
#include "model/transformer.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;

namespace {

mf::BpeVocab small_vocab() {
  mf::BpeVocab v;
  for (int b = 0; b < 256; ++b) v.tokens.push_back(mf::byte_level::encode(std::string(1, static_cast<char>(b))));
  for (const char* t : {"he", "ll", "hello"}) v.tokens.push_back(t);
  v.merges = {"h e", "l l", "he ll"};  // "hello" is reachable only through "hell o", absent: fine
  v.tokens.push_back("<|im_start|>");
  v.tokens.push_back("<|im_end|>");
  v.token_types.assign(v.tokens.size(), 1);
  v.token_types[v.tokens.size() - 2] = v.token_types[v.tokens.size() - 1] = 3;
  v.pre = "smollm";
  v.eos_id = int32_t(v.tokens.size()) - 1;
  v.bos_id = int32_t(v.tokens.size()) - 2;
  return v;
}

mf::ModelConfig moe_config(int vocab) {
  mf::ModelConfig c;
  c.model_type = "mixtral";
  c.vocab_size = vocab;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.num_experts = 4;
  c.top_k = 2;
  c.max_position_embeddings = 128;
  c.tie_word_embeddings = true;
  c.expert_names = {"Actor", "Coder", "Thinker", "Writer"};
  return c;
}

mf::Tensor logits(mf::ModelWeights w, const std::vector<int32_t>& ids) {
  mf::Transformer t(std::move(w));
  mf::KVCache cache(t.config(), int(ids.size()));
  mf::ForwardOptions fo;
  fo.all_logits = true;
  return t.forward(ids, 1, cache, fo);
}

class GgufExport : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("moeforge_gguf_export_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(GgufExport, TheGgufPackageReadsTheMoeLayout) {
  const mf::BpeVocab vocab = small_vocab();
  const mf::ModelWeights w = mf::init_random_weights(moe_config(int(vocab.tokens.size())), 4);
  const fs::path file = dir_ / "moe.gguf";
  mf::GgufExportOptions o;
  o.matrix_type = mf::DType::Q8_0;
  o.name = "tiny moe";
  o.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}";
  mf::save_gguf_model(w, vocab, file.string(), o);

  nlohmann::json want;
  want["vocab_size"] = vocab.tokens.size();
  want["kv"] = {{"general.architecture", "llama"},      {"general.name", "tiny moe"}, {"general.file_type", 7},
                {"llama.block_count", 2},               {"llama.embedding_length", 64},
                {"llama.feed_forward_length", 96},      {"llama.attention.head_count", 4},
                {"llama.attention.head_count_kv", 2},   {"llama.expert_count", 4},
                {"llama.expert_used_count", 2},         {"llama.context_length", 128},
                {"llama.rope.dimension_count", 16},     {"tokenizer.ggml.model", "gpt2"},
                {"tokenizer.ggml.pre", "smollm"},       {"tokenizer.ggml.eos_token_id", vocab.eos_id},
                {"tokenizer.chat_template", o.chat_template},
                {"moeforge.expert_names", {"Actor", "Coder", "Thinker", "Writer"}}};
  auto tensor = [&](const std::string& name, std::vector<int64_t> shape, const char* type) {
    want["tensors"][name] = {{"shape", shape}, {"type", type}};
  };
  const int64_t V = int64_t(vocab.tokens.size());
  tensor("token_embd.weight", {V, 64}, "Q8_0");
  tensor("output_norm.weight", {64}, "F32");
  for (int l = 0; l < 2; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    tensor(b + "attn_norm.weight", {64}, "F32");
    tensor(b + "ffn_norm.weight", {64}, "F32");
    tensor(b + "attn_q.weight", {64, 64}, "Q8_0");
    tensor(b + "attn_k.weight", {32, 64}, "Q8_0");
    tensor(b + "attn_v.weight", {32, 64}, "Q8_0");
    tensor(b + "attn_output.weight", {64, 64}, "Q8_0");
    tensor(b + "ffn_gate_inp.weight", {4, 64}, "F32");
    tensor(b + "ffn_gate_exps.weight", {4, 96, 64}, "Q8_0");
    tensor(b + "ffn_up_exps.weight", {4, 96, 64}, "Q8_0");
    tensor(b + "ffn_down_exps.weight", {4, 64, 96}, "Q8_0");
  }
  const fs::path expected = dir_ / "expected.json";
  std::ofstream(expected) << want.dump(2);
  const char* py = std::getenv("MOEFORGE_PYTHON");
  const char* src = std::getenv("MOEFORGE_SOURCE_DIR");
  ASSERT_TRUE(py && src) << "run through ctest";
  const std::string cmd = std::string(py) + " " + src + "/tests/reference/check_gguf_export.py " + file.string() +
                          " " + expected.string();
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

TEST_F(GgufExport, ReloadGivesTheSameLogits) {
  const mf::BpeVocab vocab = small_vocab();
  const mf::ModelWeights w = mf::init_random_weights(moe_config(int(vocab.tokens.size())), 9);
  const std::vector<int32_t> ids = {5, 104, 101, 259, 40, 7, 200};
  const mf::Tensor want = logits(w, ids);
  mf::GgufExportOptions o;
  o.matrix_type = mf::DType::F32;
  mf::save_gguf_model(w, vocab, (dir_ / "f32.gguf").string(), o);
  const mf::ModelWeights back = mf::load_model_weights((dir_ / "f32.gguf").string());
  EXPECT_EQ(back.config.num_experts, 4);
  EXPECT_EQ(back.config.top_k, 2);
  const mf::Tensor got = logits(back, ids);
  ASSERT_EQ(got.nbytes(), want.nbytes());
  EXPECT_EQ(std::memcmp(got.raw(), want.raw(), want.nbytes()), 0) << "an F32 export must reload bit for bit";

  o.matrix_type = mf::DType::Q8_0;
  mf::save_gguf_model(w, vocab, (dir_ / "q8.gguf").string(), o);
  const mf::Tensor q = logits(mf::load_model_weights((dir_ / "q8.gguf").string()), ids);
  double err = 0, scale = 0;
  for (int64_t i = 0; i < q.numel(); ++i) {
    err = std::max(err, double(std::fabs(q.data<float>()[i] - want.data<float>()[i])));
    scale = std::max(scale, double(std::fabs(want.data<float>()[i])));
  }
  EXPECT_LT(err, 0.05 * scale) << "Q8_0 export";
}

TEST_F(GgufExport, TokenizerJsonConvertsBackToTheSameVocabulary) {
  mf::BpeVocab v = small_vocab();
  const std::string tj = mf::bpe_vocab_to_tokenizer_json(v);
  const fs::path p = dir_ / "tokenizer.json";
  mf::write_file_atomic(p.string(), tj.data(), tj.size());
  std::ofstream(dir_ / "tokenizer_config.json") << nlohmann::json{{"bos_token", "<|im_start|>"},
                                                                    {"eos_token", "<|im_end|>"}}.dump();
  const mf::BpeVocab back = mf::bpe_vocab_from_tokenizer_json(p.string());
  EXPECT_EQ(back.tokens, v.tokens);
  EXPECT_EQ(back.merges, v.merges);
  EXPECT_EQ(back.token_types, v.token_types);
  EXPECT_EQ(back.pre, "smollm");
  EXPECT_EQ(back.eos_id, v.eos_id);
  EXPECT_EQ(back.bos_id, v.bos_id);
}

}  // namespace

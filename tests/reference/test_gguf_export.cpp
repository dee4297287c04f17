// GGUF export of a Mixtral-layout MoE (and of a dense model): the `gguf` package reads the keys,
// tokenizer, chat template, tensor names, types and shapes llama.cpp expects
// (check_gguf_export.py); moeforge reloads an F32 export with bit-identical logits and a Q8_0
// export within quantization error; a tokenizer.json converts back to the same vocabulary.
// K-quant mixes: every tensor has the type llama.cpp's rules give it (written out here tensor by
// tensor), including the fallbacks of a 576-wide model, and the reloaded logits are closer to the
// f32 model's than a q4_1 export's.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mapped_file.h"
#include "model/gguf_export.h"
#include "model/gguf_names.h"
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
  o.types = mf::parse_gguf_quant_mix("q8_0");
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
  o.types = mf::parse_gguf_quant_mix("f32");
  mf::save_gguf_model(w, vocab, (dir_ / "f32.gguf").string(), o);
  const mf::ModelWeights back = mf::load_model_weights((dir_ / "f32.gguf").string());
  EXPECT_EQ(back.config.num_experts, 4);
  EXPECT_EQ(back.config.top_k, 2);
  EXPECT_EQ(back.config.expert_names, w.config.expert_names);  // moeforge.expert_names, read back
  const mf::Tensor got = logits(back, ids);
  ASSERT_EQ(got.nbytes(), want.nbytes());
  EXPECT_EQ(std::memcmp(got.raw(), want.raw(), want.nbytes()), 0) << "an F32 export must reload bit for bit";

  o.types = mf::parse_gguf_quant_mix("q8_0");
  mf::save_gguf_model(w, vocab, (dir_ / "q8.gguf").string(), o);
  const mf::Tensor q = logits(mf::load_model_weights((dir_ / "q8.gguf").string()), ids);
  double err = 0, scale = 0;
  for (int64_t i = 0; i < q.numel(); ++i) {
    err = std::max(err, double(std::fabs(q.data<float>()[i] - want.data<float>()[i])));
    scale = std::max(scale, double(std::fabs(want.data<float>()[i])));
  }
  EXPECT_LT(err, 0.05 * scale) << "Q8_0 export";
}

// A dense llama with K-quant-friendly (multiple of 256) or SmolLM2-like (576) widths.
mf::ModelConfig dense_config(int vocab, int hidden, int heads, int kv_heads, int inter, int layers, bool tied) {
  mf::ModelConfig c;
  c.model_type = "llama";
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = inter;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.max_position_embeddings = 64;
  c.tie_word_embeddings = tied;
  return c;
}

// Relative RMS error of the logits of `w` exported as `type` and reloaded, against `w`'s own.
double relative_logit_error(const fs::path& file, const mf::ModelWeights& w, const mf::BpeVocab& vocab,
                            const std::string& type) {
  mf::GgufExportOptions o;
  o.types = mf::parse_gguf_quant_mix(type);
  mf::save_gguf_model(w, vocab, file.string(), o);
  const std::vector<int32_t> ids = {5, 104, 101, 259, 40, 7, 200, 33};
  const mf::Tensor ref = logits(w, ids);
  const mf::Tensor got = logits(mf::load_model_weights(file.string()), ids);
  double err = 0, norm = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    const double d = double(got.data<float>()[i]) - double(ref.data<float>()[i]);
    err += d * d;
    norm += double(ref.data<float>()[i]) * double(ref.data<float>()[i]);
  }
  return std::sqrt(err / norm);
}

// Exports `w` as `type` and checks every tensor's type and the file type with the gguf package;
// the reloaded model's logits must be closer to the original's than a q4_1 export's, by
// `vs_q4_1` (random models amplify weight error through the layers, so an absolute bound says
// little; the ratio is what the extra bits buy).
void check_kquant_export(const fs::path& dir, const mf::ModelWeights& w, const mf::BpeVocab& vocab,
                         const std::string& type, int file_type, const nlohmann::json& tensor_types, double vs_q4_1) {
  const fs::path file = dir / (type + ".gguf");
  mf::GgufExportOptions o;
  o.types = mf::parse_gguf_quant_mix(type);
  const mf::GgufTypeCounts counts = mf::save_gguf_model(w, vocab, file.string(), o);
  nlohmann::json want;
  want["vocab_size"] = vocab.tokens.size();
  want["kv"] = {{"general.file_type", file_type}, {"general.quantization_version", 2}};
  want["tensors"] = tensor_types;
  int counted = 0;
  for (const auto& [name, n] : counts) counted += n;
  EXPECT_EQ(counted, int(tensor_types.size())) << "tensors written vs tensors expected";
  const fs::path expected = dir / (type + ".expected.json");
  std::ofstream(expected) << want.dump(2);
  const std::string cmd = std::string(std::getenv("MOEFORGE_PYTHON")) + " " + std::getenv("MOEFORGE_SOURCE_DIR") +
                          "/tests/reference/check_gguf_export.py " + file.string() + " " + expected.string();
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;

  const double err = relative_logit_error(file, w, vocab, type);
  const double q4_1 = relative_logit_error(dir / "q4_1.gguf", w, vocab, "q4_1");
  std::printf("%s: relative logit error %.4f, q4_1 %.4f\n", type.c_str(), err, q4_1);
  EXPECT_LT(err, vs_q4_1 * q4_1) << type;
}

// The tensor list of a dense llama export, with the type `pick(name, layer)` gives each matrix.
nlohmann::json dense_tensor_types(const mf::ModelConfig& c,
                                  const std::function<std::string(const std::string&, int)>& pick) {
  nlohmann::json t;
  const int64_t H = c.hidden_size, I = c.intermediate_size, kv = int64_t(c.num_kv_heads) * (H / c.num_heads);
  auto put = [&](const std::string& name, std::vector<int64_t> shape, const std::string& type) {
    t[name] = {{"shape", shape}, {"type", type}};
  };
  put("token_embd.weight", {c.vocab_size, H}, pick("token_embd", -1));
  put("output_norm.weight", {H}, "F32");
  if (!c.tie_word_embeddings) put("output.weight", {c.vocab_size, H}, pick("output", -1));
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    put(b + "attn_norm.weight", {H}, "F32");
    put(b + "ffn_norm.weight", {H}, "F32");
    put(b + "attn_q.weight", {H, H}, pick("attn_q", l));
    put(b + "attn_k.weight", {kv, H}, pick("attn_k", l));
    put(b + "attn_v.weight", {kv, H}, pick("attn_v", l));
    put(b + "attn_output.weight", {H, H}, pick("attn_output", l));
    put(b + "ffn_gate.weight", {I, H}, pick("ffn_gate", l));
    put(b + "ffn_up.weight", {I, H}, pick("ffn_up", l));
    put(b + "ffn_down.weight", {H, I}, pick("ffn_down", l));
  }
  return t;
}

TEST_F(GgufExport, ExpertNamesOfTheWrongCountOrTypeAreAClearError) {
  // The same file with its moeforge.expert_names replaced: a name short, then a number.
  const mf::BpeVocab vocab = small_vocab();
  const mf::ModelWeights w = mf::init_random_weights(moe_config(int(vocab.tokens.size())), 9);
  mf::GgufExportOptions o;
  o.types = mf::parse_gguf_quant_mix("f32");
  const std::string good = (dir_ / "named.gguf").string();
  mf::save_gguf_model(w, vocab, good, o);
  const mf::GgufFile f = mf::GgufFile::open(good);
  for (const mf::GgufValue& names : {mf::GgufValue::of_string_array({"Actor", "Coder", "Thinker"}),
                                     mf::GgufValue::of_u32(7)}) {
    mf::GgufWriter g;
    for (const std::string& key : f.metadata_keys_in_file_order()) g.add_kv(key, f.at(key));
    g.add_kv(mf::kGgufExpertNamesKey, names);
    for (const std::string& name : f.tensor_names_in_file_order()) g.add_tensor(name, f.tensor(name));
    const std::string bad = (dir_ / "bad-names.gguf").string();
    g.write(bad);
    try {
      (void)mf::load_model_weights(bad);
      ADD_FAILURE() << "loaded a file with bad expert names";
    } catch (const mf::Error& e) {
      EXPECT_NE(std::string(e.what()).find("bad-names.gguf: metadata moeforge.expert_names"), std::string::npos)
          << e.what();
    }
  }
}

TEST_F(GgufExport, KQuantMixesGiveEachTensorLlamaCppsType) {
  const mf::BpeVocab vocab = small_vocab();
  const int V = int(vocab.tokens.size());
  // 8 layers: llama.cpp's "more bits" layers are the first and last eighth (0 and 7) and every
  // third in between counting from the first eighth's end (3, 6).
  const mf::ModelConfig c = dense_config(V, 256, 4, 2, 512, 8, false);
  const mf::ModelWeights w = mf::init_random_weights(c, 21);
  const std::set<int> more_bits = {0, 3, 6, 7};
  check_kquant_export(dir_, w, vocab, "Q4_K_M", 15,
                      dense_tensor_types(c, [&](const std::string& n, int l) -> std::string {
                        if (n == "output") return "Q6_K";
                        if ((n == "attn_v" || n == "ffn_down") && more_bits.count(l)) return "Q6_K";
                        return "Q4_K";
                      }),
                      0.85);
  check_kquant_export(dir_, w, vocab, "q6_k", 18,
                      dense_tensor_types(c, [](const std::string&, int) -> std::string { return "Q6_K"; }), 0.35);
  check_kquant_export(dir_, w, vocab, "q4_k_s", 14,
                      dense_tensor_types(c, [&](const std::string& n, int l) -> std::string {
                        if (n == "output") return "Q6_K";
                        if (n == "attn_v" && l < 4) return "Q5_K";  // the first four attn_v
                        if (n == "ffn_down" && l < 1) return "Q5_K";  // the first eighth
                        return "Q4_K";
                      }),
                      0.85);
  check_kquant_export(dir_, w, vocab, "Q5_K_M", 17,
                      dense_tensor_types(c, [&](const std::string& n, int l) -> std::string {
                        if (n == "output") return "Q6_K";
                        if ((n == "attn_v" || n == "ffn_down") && more_bits.count(l)) return "Q6_K";
                        return "Q5_K";
                      }),
                      0.55);
}

TEST_F(GgufExport, KQuantMixesFallBackWhereRowsAreNotMultiplesOf256) {
  const mf::BpeVocab vocab = small_vocab();
  // SmolLM2-135M's widths (hidden 576 = 2.25 x 256, intermediate 1536 = 6 x 256), 2 layers,
  // tied embeddings. Rows of 576 values cannot hold K-quant blocks: Q4_K -> Q5_0, Q6_K -> Q8_0;
  // token_embd doubles as the output and becomes Q8_0. ffn_down's rows (1536) keep K-quants.
  // With 2 layers only layer 1 (the last eighth) gets more bits.
  const mf::ModelConfig c = dense_config(int(vocab.tokens.size()), 576, 9, 3, 1536, 2, true);
  const mf::ModelWeights w = mf::init_random_weights(c, 22);
  check_kquant_export(dir_, w, vocab, "q4_K_M", 15,
                      dense_tensor_types(c, [](const std::string& n, int l) -> std::string {
                        if (n == "token_embd") return "Q8_0";
                        if (n == "ffn_down") return l == 1 ? "Q6_K" : "Q4_K";
                        if (n == "attn_v") return l == 1 ? "Q8_0" : "Q5_0";
                        return "Q5_0";
                      }),
                      0.85);
  check_kquant_export(dir_, w, vocab, "q5_K_S", 16,
                      dense_tensor_types(c, [](const std::string& n, int) -> std::string {
                        if (n == "token_embd") return "Q8_0";
                        return n == "ffn_down" ? "Q5_K" : "Q5_1";
                      }),
                      0.55);
}

TEST_F(GgufExport, KQuantMixOfAMoeStacksExpertsInTheMixTypes) {
  const mf::BpeVocab vocab = small_vocab();
  mf::ModelConfig c = moe_config(int(vocab.tokens.size()));
  c.hidden_size = 256;
  c.intermediate_size = 256;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  const mf::ModelWeights w = mf::init_random_weights(c, 23);
  // 2 layers: layer 1 gets more bits; stacked ffn_down_exps follow the ffn_down rule.
  nlohmann::json t;
  auto put = [&](const std::string& name, std::vector<int64_t> shape, const std::string& type) {
    t[name] = {{"shape", shape}, {"type", type}};
  };
  put("token_embd.weight", {c.vocab_size, 256}, "Q6_K");  // tied: the output's rule
  put("output_norm.weight", {256}, "F32");
  for (int l = 0; l < 2; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    put(b + "attn_norm.weight", {256}, "F32");
    put(b + "ffn_norm.weight", {256}, "F32");
    put(b + "attn_q.weight", {256, 256}, "Q4_K");
    put(b + "attn_k.weight", {128, 256}, "Q4_K");
    put(b + "attn_v.weight", {128, 256}, l == 1 ? "Q6_K" : "Q4_K");
    put(b + "attn_output.weight", {256, 256}, "Q4_K");
    put(b + "ffn_gate_inp.weight", {4, 256}, "F32");
    put(b + "ffn_gate_exps.weight", {4, 256, 256}, "Q4_K");
    put(b + "ffn_up_exps.weight", {4, 256, 256}, "Q4_K");
    put(b + "ffn_down_exps.weight", {4, 256, 256}, l == 1 ? "Q6_K" : "Q4_K");
  }
  check_kquant_export(dir_, w, vocab, "Q4_K_M", 15, t, 0.85);
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

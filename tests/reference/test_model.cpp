// Whole-model parity with the PyTorch reference (tests/reference/torch_ref) on seeded tiny
// models written by gen_model.py: HF safetensors directories of every supported family and
// the same llama/mixtral weights as llama.cpp-style GGUFs (F32 and Q8_0).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "compare.h"
#include "core/mapped_file.h"
#include "model/config_json.h"
#include "model/generation_config.h"
#include "model/load.h"
#include "model/transformer.h"

namespace mf {
namespace {

std::string fixtures() { return std::getenv("MOEFORGE_FIXTURES"); }

std::vector<float> read_f32(const std::string& path) {
  std::vector<float> v = test::read_f32_file(path);
  EXPECT_FALSE(v.empty()) << path;
  return v;
}

struct Reference {
  std::string name;
  nlohmann::json meta;
  std::vector<std::vector<int32_t>> tokens;  // [batch][T]
  std::vector<float> logits;                 // [batch, T, vocab]
  int64_t T = 0, vocab = 0;

  explicit Reference(const std::string& case_name) : name(case_name) {
    meta = nlohmann::json::parse(read_text_file(fixtures() + "/" + name + ".ref.json"));
    tokens = meta["tokens"].get<std::vector<std::vector<int32_t>>>();
    T = meta["T"];
    vocab = meta["vocab"];
    logits = read_f32(fixtures() + "/" + name + ".logits.f32");
  }
  std::string model_path() const { return fixtures() + "/" + meta["path"].get<std::string>(); }
  const float* seq_logits(int b) const { return logits.data() + size_t(b) * size_t(T * vocab); }
  std::vector<float> router(int layer) const { return read_f32(fixtures() + "/" + name + ".router" + std::to_string(layer) + ".f32"); }
};

double rel_err(const float* a, const float* b, size_t n) { return test::max_err_over_scale(a, b, n); }

constexpr double kTol = 1e-4;

class ModelParity : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelParity, FullForwardMatchesTorch) {
  Reference ref(GetParam());
  Transformer model(load_model_weights(ref.model_path()));
  for (int b = 0; b < 2; ++b) {
    KVCache cache(model.config(), 32);
    Tensor logits = model.forward(ref.tokens[size_t(b)], 1, cache, {.all_logits = true});
    ASSERT_EQ(logits.shape(), (Shape{ref.T, ref.vocab}));
    double e = rel_err(logits.data<float>(), ref.seq_logits(b), size_t(ref.T * ref.vocab));
    EXPECT_LT(e, kTol) << ref.name << " sequence " << b;
    RecordProperty("rel_err_seq" + std::to_string(b), std::to_string(e));
  }
}

TEST_P(ModelParity, IncrementalDecodeEqualsFullForward) {
  Reference ref(GetParam());
  Transformer model(load_model_weights(ref.model_path()));
  KVCache cache(model.config(), 32);
  const auto& toks = ref.tokens[0];
  const int prefill = 4;
  Tensor first = model.forward(std::span(toks).first(prefill), 1, cache);
  ASSERT_EQ(first.shape(), (Shape{1, ref.vocab}));
  EXPECT_LT(rel_err(first.data<float>(), ref.seq_logits(0) + (prefill - 1) * ref.vocab, size_t(ref.vocab)), kTol);
  for (int64_t t = prefill; t < ref.T; ++t) {
    Tensor step = model.forward(std::span(toks).subspan(size_t(t), 1), 1, cache);
    EXPECT_EQ(cache.length(), t + 1);
    EXPECT_LT(rel_err(step.data<float>(), ref.seq_logits(0) + t * ref.vocab, size_t(ref.vocab)), kTol)
        << ref.name << " decode step at position " << t;
  }
  // Truncating and re-feeding gives the same logits again (prefix reuse).
  cache.truncate(0, 5);
  Tensor again = model.forward(std::span(toks).subspan(5, 1), 1, cache);
  EXPECT_LT(rel_err(again.data<float>(), ref.seq_logits(0) + 5 * ref.vocab, size_t(ref.vocab)), kTol);
}

TEST_P(ModelParity, BatchOfTwoEqualsEachAlone) {
  Reference ref(GetParam());
  Transformer model(load_model_weights(ref.model_path()));
  std::vector<int32_t> both = ref.tokens[0];
  both.insert(both.end(), ref.tokens[1].begin(), ref.tokens[1].end());
  KVCache cache(model.config(), 32, 2);
  std::vector<Tensor> routers;
  Tensor logits = model.forward(both, 2, cache, {.all_logits = true, .router_logits = &routers});
  ASSERT_EQ(logits.shape(), (Shape{2 * ref.T, ref.vocab}));
  EXPECT_LT(rel_err(logits.data<float>(), ref.logits.data(), ref.logits.size()), kTol);
  EXPECT_EQ(cache.length(0), ref.T);
  EXPECT_EQ(cache.length(1), ref.T);

  const int n_router = ref.meta["num_router_layers"];
  ASSERT_EQ(int(routers.size()), n_router);
  for (int l = 0; l < n_router; ++l) {
    std::vector<float> want = ref.router(l);
    ASSERT_EQ(routers[size_t(l)].shape(), (Shape{2 * ref.T, int64_t(ref.meta["num_experts"])}));
    EXPECT_LT(rel_err(routers[size_t(l)].data<float>(), want.data(), want.size()), kTol) << "router layer " << l;
  }
  // Last-position logits of a batch: one row per sequence.
  KVCache cache2(model.config(), 32, 2);
  Tensor last = model.forward(both, 2, cache2);
  ASSERT_EQ(last.shape(), (Shape{2, ref.vocab}));
  for (int b = 0; b < 2; ++b)
    EXPECT_LT(rel_err(last.data<float>() + b * ref.vocab, ref.seq_logits(b) + (ref.T - 1) * ref.vocab,
                      size_t(ref.vocab)), kTol);
}

INSTANTIATE_TEST_SUITE_P(Models, ModelParity,
                         ::testing::Values("llama_tied", "llama_untied", "qwen2_bias", "mistral_window", "mixtral_moe",
                                           "qwen2_moe", "llama_bf16", "llama_untied_gguf", "llama_tied_gguf",
                                           "llama_untied_q8_0_gguf", "mixtral_moe_gguf"));

TEST(ModelGguf, SameLogitsAsTheHfDirectory) {
  for (const char* name : {"llama_untied_gguf", "llama_tied_gguf", "mixtral_moe_gguf"}) {
    Reference ref(name);
    Transformer gguf(load_model_weights(ref.model_path()));
    Transformer hf(load_model_weights(fixtures() + "/" + ref.meta["hf_source"].get<std::string>()));
    KVCache c1(gguf.config(), 16), c2(hf.config(), 16);
    Tensor a = gguf.forward(ref.tokens[0], 1, c1, {.all_logits = true});
    Tensor b = hf.forward(ref.tokens[0], 1, c2, {.all_logits = true});
    EXPECT_LT(rel_err(a.data<float>(), b.data<float>(), size_t(a.numel())), 1e-5) << name;
  }
}

TEST(ModelGguf, ConfigFromMetadataMatchesConfigJson) {
  ModelWeights g = load_model_weights(fixtures() + "/mixtral_moe_gguf.gguf");
  ModelConfig h = load_hf_config(fixtures() + "/mixtral_moe/config.json");
  EXPECT_EQ(g.config.model_type, "mixtral");
  EXPECT_EQ(g.config.num_layers, h.num_layers);
  EXPECT_EQ(g.config.hidden_size, h.hidden_size);
  EXPECT_EQ(g.config.num_heads, h.num_heads);
  EXPECT_EQ(g.config.num_kv_heads, h.num_kv_heads);
  EXPECT_EQ(g.config.num_experts, 4);
  EXPECT_EQ(g.config.top_k, 2);
  EXPECT_EQ(g.config.vocab_size, h.vocab_size);
  EXPECT_EQ(g.config.expert_intermediate_size(), h.expert_intermediate_size());
  EXPECT_FALSE(g.config.tie_word_embeddings);
  EXPECT_FLOAT_EQ(g.config.rms_norm_eps, h.rms_norm_eps);
  EXPECT_TRUE(load_model_weights(fixtures() + "/llama_tied_gguf.gguf").config.tie_word_embeddings);
  // Stacked expert tensors become zero-copy slices of the mapped file.
  const Tensor& e1 = g.tensors.at("model.layers.0.block_sparse_moe.experts.1.w1.weight");
  const Tensor& e0 = g.tensors.at("model.layers.0.block_sparse_moe.experts.0.w1.weight");
  EXPECT_EQ(static_cast<const char*>(e1.raw()) - static_cast<const char*>(e0.raw()), int64_t(e0.nbytes()));
}

TEST(ModelGguf, Q8_0WeightsStayQuantized) {
  ModelWeights w = load_model_weights(fixtures() + "/llama_untied_q8_0_gguf.gguf");
  EXPECT_EQ(w.tensors.at("model.layers.0.self_attn.q_proj.weight").dtype(), DType::Q8_0);
  EXPECT_EQ(w.tensors.at("model.layers.0.mlp.down_proj.weight").dtype(), DType::Q8_0);
}

TEST(ModelHf, ConfigsAndGenerationConfig) {
  ModelConfig q = load_hf_config(fixtures() + "/qwen2_moe/config.json");
  EXPECT_EQ(q.model_type, "qwen2_moe");
  EXPECT_TRUE(q.attention_bias);
  EXPECT_FALSE(q.routing.norm_topk_prob);
  EXPECT_TRUE(q.layer_is_moe(0));
  EXPECT_FALSE(q.layer_is_moe(1));
  EXPECT_EQ(q.shared_expert_intermediate_size, 96);
  ModelConfig qb = load_hf_config(fixtures() + "/qwen2_bias/config.json");
  EXPECT_EQ(qb.sliding_window, 0) << "qwen2 ignores sliding_window unless use_sliding_window";
  EXPECT_EQ(qb.eos_token_ids, (std::vector<int>{2, 3}));
  EXPECT_EQ(load_hf_config(fixtures() + "/mistral_window/config.json").sliding_window, 4);
  GenerationConfig g = load_generation_config(fixtures() + "/qwen2_bias/generation_config.json");
  EXPECT_EQ(g.eos_token_ids, (std::vector<int>{2, 3}));
  EXPECT_EQ(g.do_sample, std::optional<bool>(true));
  ASSERT_TRUE(g.temperature.has_value());
  EXPECT_FLOAT_EQ(*g.temperature, 0.7f);
  ModelWeights bf = load_model_weights(fixtures() + "/llama_bf16");
  EXPECT_EQ(bf.tensors.at("model.layers.1.mlp.up_proj.weight").dtype(), DType::BF16);
}

}  // namespace
}  // namespace mf

// The transformers layout a model is saved in (model/hf_layout): each MoE feature goes to the
// architecture that computes it, or to moeforge's own type naming why; and every layout reads
// back into the same model (same logits, bit for bit).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/json_file.h"
#include "model/config_json.h"
#include "model/hf_layout.h"
#include "model/init.h"
#include "model/kv_cache.h"
#include "model/load.h"
#include "model/save.h"
#include "model/transformer.h"

namespace {
namespace fs = std::filesystem;

mf::ModelConfig tiny_moe() {
  mf::ModelConfig c;
  c.model_type = "llama";
  c.vocab_size = 48;
  c.hidden_size = 32;
  c.intermediate_size = 40;
  c.moe_intermediate_size = 24;
  c.num_layers = 3;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.num_experts = 4;
  c.top_k = 2;
  c.max_position_embeddings = 64;
  return c;
}

std::vector<float> logits(const mf::ModelWeights& w) {
  mf::Transformer t(w);
  const std::vector<int32_t> ids = {1, 7, 3, 44, 9, 12, 30, 2, 5, 17};
  mf::KVCache cache(t.config(), int(ids.size()));
  mf::ForwardOptions fo;
  fo.all_logits = true;
  const mf::Tensor out = t.forward(ids, 1, cache, fo);
  return {out.data<float>(), out.data<float>() + out.numel()};
}

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("moeforge_hf_layout_" + std::to_string(::getpid()));
  ~TempDir() { fs::remove_all(path); }
};

// Saves, checks config.json's model_type, reads back and compares the logits exactly.
nlohmann::json round_trip(const mf::ModelConfig& c, const std::string& expected_type) {
  const mf::ModelWeights w = mf::init_random_weights(c, 11, 0.2f);
  TempDir dir;
  const mf::HfLayout layout = mf::save_model_weights(w, dir.path.string());
  EXPECT_EQ(layout.model_type, expected_type);
  const nlohmann::json j = mf::read_json_file((dir.path / "config.json").string());
  EXPECT_EQ(j["model_type"], expected_type);
  const mf::ModelWeights back = mf::load_model_weights(dir.path.string());
  for (int l = 0; l < c.num_layers; ++l) EXPECT_EQ(back.config.layer_is_moe(l), c.layer_is_moe(l)) << l;
  EXPECT_EQ(logits(back), logits(w));
  // Saving what was read back writes the same layout again (no duplicated zero tensors).
  TempDir again;
  again.path += "_again";
  EXPECT_EQ(mf::save_model_weights(back, again.path.string()).model_type, expected_type);
  EXPECT_EQ(logits(mf::load_model_weights(again.path.string())), logits(w));
  return j;
}

TEST(HfLayout, DenseKeepsItsTypeAndPlainMoeIsMixtral) {
  mf::ModelConfig dense = tiny_moe();
  dense.num_experts = dense.top_k = 0;
  EXPECT_EQ(mf::choose_hf_layout(dense).model_type, "llama");
  EXPECT_EQ(mf::choose_hf_layout(tiny_moe()).model_type, "mixtral");
  mf::ModelConfig topk_softmax = tiny_moe();
  topk_softmax.routing.policy = mf::RouterPolicy::TopKSoftmax;  // the same gates as renormalised softmax top-k
  EXPECT_EQ(mf::choose_hf_layout(topk_softmax).model_type, "mixtral");
  const nlohmann::json j = round_trip(tiny_moe(), "mixtral");
  EXPECT_EQ(j["intermediate_size"], 24);  // Mixtral's intermediate_size is the experts' width
}

TEST(HfLayout, SharedExpertAndDenseFirstLayerAreQwen2Moe) {
  mf::ModelConfig c = tiny_moe();
  c.shared_expert_intermediate_size = 16;
  c.first_k_dense = 1;
  const nlohmann::json j = round_trip(c, "qwen2_moe");
  EXPECT_EQ(j["mlp_only_layers"], nlohmann::json::array({0}));
  EXPECT_EQ(j["decoder_sparse_step"], 1);
  EXPECT_EQ(j["intermediate_size"], 40);
  EXPECT_EQ(j["moe_intermediate_size"], 24);
  EXPECT_EQ(j["shared_expert_intermediate_size"], 16);
  EXPECT_EQ(j["norm_topk_prob"], true);
}

TEST(HfLayout, SwitchIsQwen2MoeTopOneWithoutRenormalisation) {
  mf::ModelConfig c = tiny_moe();
  c.routing.policy = mf::RouterPolicy::Switch;
  c.top_k = 1;
  // No shared expert and no q/k/v biases: written as exact zeros (a width-0 shared expert).
  const nlohmann::json j = round_trip(c, "qwen2_moe");
  EXPECT_EQ(j["num_experts_per_tok"], 1);
  EXPECT_EQ(j["norm_topk_prob"], false);
  EXPECT_EQ(j["shared_expert_intermediate_size"], 0);
  EXPECT_EQ(j["router_policy"], "switch");
}

TEST(HfLayout, WhatNoTransformersLayoutHoldsIsMoeforgeOnlyNamingTheFeature) {
  struct Case {
    const char* feature;
    std::function<void(mf::ModelConfig&)> set;
  };
  const std::vector<Case> cases = {
      {"router_policy expert_choice", [](mf::ModelConfig& c) { c.routing.policy = mf::RouterPolicy::ExpertChoice; }},
      {"router_policy noisy_topk", [](mf::ModelConfig& c) { c.routing.policy = mf::RouterPolicy::NoisyTopK; }},
      {"eval_capacity_factor",
       [](mf::ModelConfig& c) {
         c.routing.capacity_factor = 1.0;
         c.routing.eval_capacity_factor = 1.0;
       }},
      {"router_selection_bias", [](mf::ModelConfig& c) { c.router_selection_bias = true; }},
      {"moe_layer_experts", [](mf::ModelConfig& c) { c.layer_experts = {4, 2, 4}; }},
      {"shared_expert_gate false",
       [](mf::ModelConfig& c) {
         c.shared_expert_intermediate_size = 16;
         c.shared_expert_gated = false;
       }},
  };
  for (const Case& k : cases) {
    mf::ModelConfig c = tiny_moe();
    k.set(c);
    const mf::HfLayout layout = mf::choose_hf_layout(c);
    EXPECT_EQ(layout.model_type, mf::kMoeforgeOnlyType) << k.feature;
    EXPECT_NE(mf::describe_blockers(layout).find(k.feature), std::string::npos) << mf::describe_blockers(layout);
    const nlohmann::json j = round_trip(c, mf::kMoeforgeOnlyType);
    EXPECT_EQ(j["architectures"][0], "MoeforgeForCausalLM");
    EXPECT_NE(j["moeforge_only_because"].dump().find(k.feature), std::string::npos) << k.feature;
  }
}

TEST(HfLayout, DtypeConvertsEveryParameter) {
  const mf::ModelWeights w = mf::init_random_weights(tiny_moe(), 5, 0.2f);
  TempDir dir;
  mf::HfSaveOptions o;
  o.dtype = mf::parse_hf_dtype("BF16");
  mf::save_model_weights(w, dir.path.string(), o);
  const mf::ModelWeights back = mf::load_model_weights(dir.path.string());
  EXPECT_EQ(back.config.torch_dtype, "bfloat16");
  for (const auto& [name, t] : back.tensors) EXPECT_EQ(t.dtype(), mf::DType::BF16) << name;
  const std::vector<float> a = logits(w), b = logits(back);
  double worst = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, double(std::fabs(a[i] - b[i])));
    scale = std::max(scale, double(std::fabs(a[i])));
  }
  EXPECT_LT(worst, 0.05 * scale);  // bf16 keeps 8 bits of mantissa
  EXPECT_THROW(mf::parse_hf_dtype("q4_0"), mf::Error);
}

}  // namespace

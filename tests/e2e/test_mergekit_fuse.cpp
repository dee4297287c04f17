// `moeforge fuse` with mergekit-moe recipes as users have them: base_model, gate_mode,
// experts[].source_model with positive/negative prompts, experts_per_token, dtype, noise_scale and
// residual_scale, the output directory as a second argument. Each gate mode must build what the
// equivalent moeforge recipe builds (same router tensors), and what moeforge cannot build is
// refused by name.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "cli_run.h"
#include "model/load.h"
#include "model/tensor_names.h"

namespace {
using namespace mf::test;

class MergekitFuse : public ::testing::Test {
 protected:
  void SetUp() override {
    if (binary().empty()) GTEST_SKIP() << "MOEFORGE_BIN not set (run through ctest)";
    dir_ = fs::temp_directory_path() / ("moeforge_mergekit_e2e_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream corpus(dir_ / "corpus.txt");
    for (int i = 0; i < 200; ++i) corpus << "write code for the cat. solve math for the dog. " << i % 10 << "\n";
    corpus.close();
    // Two small dense models of one shape (different seeds): the base and a second expert.
    for (const char* name : {"coder-model", "math-model"}) {
      const fs::path p = dir_ / (std::string(name) + ".yaml");
      std::ofstream(p) << "model:\n  init: scratch\n"
                          "  config: {model_type: llama, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2,\n"
                          "           num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 128,\n"
                          "           tie_word_embeddings: true}\n"
                          "tokenizer: char\n"
                          "data: {train: corpus.txt, valid_fraction: 0.1}\n"
                          "train: {steps: 4, batch: 4, seq_len: 32, lr: 3.0e-3, warmup: 1, eval_windows: 1, seed: "
                       << (name[0] == 'c' ? 1 : 2) << "}\n"
                       << "output: " << (dir_ / "runs" / name).string() << "\n";
      auto r = run({"train", p.string(), "--quiet"});
      ASSERT_EQ(r.rc, 0) << r.err;
      // mergekit users name experts by their folders: models/coder-model, models/math-model.
      fs::create_directories(dir_ / "models");
      fs::create_directory_symlink(dir_ / "runs" / name / "model", dir_ / "models" / name);
    }
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A mergekit-moe config, with paths relative to the recipe's folder as mergekit users write them.
  fs::path mergekit_recipe(const std::string& gate_mode, const std::string& extra = "",
                           const std::string& expert_extra = "") {
    const fs::path p = dir_ / "mergekit.yml";
    std::ofstream(p) << "base_model: models/coder-model\n"
                     << "gate_mode: " << gate_mode << "\n"
                     << "dtype: float32\n"
                     << "experts_per_token: 1\n"
                     << extra
                     << "experts:\n"
                        "  - source_model: models/coder-model\n"
                        "    positive_prompts: [\"write code for the cat\"]\n"
                     << expert_extra
                     << "  - source_model: models/math-model\n"
                        "    positive_prompts: [\"solve math for the dog\"]\n"
                        "    negative_prompts: [\"write code\"]\n";
    return p;
  }

  // The same fusion as a moeforge recipe.
  fs::path moeforge_recipe(const std::string& router_init) {
    const fs::path p = dir_ / "native.yaml";
    std::ofstream(p) << "skeleton: models/coder-model\n"
                        "experts:\n"
                        "  - {name: coder-model, source: models/coder-model, positive: [\"write code for the cat\"]}\n"
                        "  - {name: math-model, source: models/math-model, positive: [\"solve math for the dog\"],\n"
                        "     negative: [\"write code\"]}\n"
                        "top_k: 1\n"
                     << "router_init: " << router_init << "\n"
                     << "dtype: f32\n";
    return p;
  }

  std::vector<float> router(const std::string& model_dir, int layer) {
    const mf::ModelWeights w = mf::load_model_weights(model_dir);
    const mf::Tensor r = w.tensors.at(mf::mixtral_moe_names(layer).router()).to_f32();
    return std::vector<float>(r.data<float>(), r.data<float>() + r.numel());
  }

  fs::path dir_;
};

TEST_F(MergekitFuse, HiddenGateModeBuildsWhatTheMoeforgeRecipeBuilds) {
  const std::string out = (dir_ / "mk").string();
  auto r = run({"fuse", mergekit_recipe("hidden").string(), out});  // OUTPUT_DIR as mergekit-moe takes it
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.err, "mergekit-moe recipe")) << r.err;
  EXPECT_TRUE(has(r.err, "gate_mode hidden")) << r.err;
  const auto summary = nlohmann::json::parse(r.out);
  EXPECT_EQ(summary["expert_names"], nlohmann::json::array({"coder-model", "math-model"}));
  EXPECT_EQ(summary["top_k"], 1);

  const std::string native = (dir_ / "native").string();
  auto n = run({"fuse", moeforge_recipe("{method: prompts, hidden: ffn_input}").string(), "-o", native, "--quiet"});
  ASSERT_EQ(n.rc, 0) << n.err;
  // Same routers, same experts, same everything: the weights files are byte-identical.
  EXPECT_EQ(slurp(fs::path(out) / "model.safetensors"), slurp(fs::path(native) / "model.safetensors"));
  EXPECT_EQ(router(out, 0), router(native, 0));

  // It runs, and the second expert is the math model's MLP.
  EXPECT_EQ(run({"generate", "-m", out, "-p", "write", "--max-tokens", "4", "--temperature", "0"}).rc, 0);
  const mf::ModelWeights fused = mf::load_model_weights(out);
  const mf::ModelWeights math = mf::load_model_weights((dir_ / "models" / "math-model").string());
  const mf::Tensor a = fused.tensors.at(mf::mixtral_moe_names(1).expert(1, mf::kMlpDown)).to_f32();
  const mf::Tensor b = math.tensors.at(mf::layer_names(1).mlp(mf::kMlpDown)).to_f32();
  ASSERT_EQ(a.numel(), b.numel());
  for (int64_t i = 0; i < a.numel(); ++i) ASSERT_EQ(a.data<float>()[i], b.data<float>()[i]) << i;
}

TEST_F(MergekitFuse, CheapEmbedUsesOneVectorPerExpertAtEveryLayer) {
  const std::string out = (dir_ / "cheap").string();
  auto r = run({"fuse", mergekit_recipe("cheap_embed").string(), out, "--quiet"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const std::vector<float> l0 = router(out, 0), l1 = router(out, 1);
  EXPECT_EQ(l0, l1);  // the prompts' embedding, the same at every layer
  double norm = 0;
  for (float v : l0) norm += double(v) * v;
  EXPECT_GT(norm, 0.0);
  const std::string native = (dir_ / "native").string();
  ASSERT_EQ(run({"fuse", moeforge_recipe("{method: prompts, hidden: embedding}").string(), "-o", native, "--quiet"}).rc, 0);
  EXPECT_EQ(l0, router(native, 0));
}

TEST_F(MergekitFuse, RandomGatesDtypeAndExpertKnobs) {
  // random: N(0, 1) as mergekit draws; bfloat16 saved; residual_scale halves the down projection.
  const std::string out = (dir_ / "rand").string();
  auto r = run({"fuse", mergekit_recipe("random", "", "    residual_scale: 0.5\n").string(), "--set", "dtype=bfloat16",
                "-o", out, "--quiet"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto config = nlohmann::json::parse(slurp(fs::path(out) / "config.json"));
  EXPECT_EQ(config["torch_dtype"], "bfloat16");
  const std::vector<float> g = router(out, 0);
  double ss = 0;
  for (float v : g) ss += double(v) * v;
  const double std = std::sqrt(ss / double(g.size()));  // 2 x 32 draws
  EXPECT_GT(std, 0.6);
  EXPECT_LT(std, 1.5);
  const mf::ModelWeights fused = mf::load_model_weights(out);
  const mf::ModelWeights coder = mf::load_model_weights((dir_ / "models" / "coder-model").string());
  const mf::Tensor down = fused.tensors.at(mf::mixtral_moe_names(0).expert(0, mf::kMlpDown)).to_f32();
  const mf::Tensor src = coder.tensors.at(mf::layer_names(0).mlp(mf::kMlpDown)).to_f32();
  const mf::Tensor up = fused.tensors.at(mf::mixtral_moe_names(0).expert(0, mf::kMlpUp)).to_f32();
  const mf::Tensor src_up = coder.tensors.at(mf::layer_names(0).mlp(mf::kMlpUp)).to_f32();
  for (int64_t i = 0; i < down.numel(); ++i)  // bf16: 8 bits of mantissa
    ASSERT_NEAR(down.data<float>()[i], 0.5f * src.data<float>()[i], 0.01f * std::fabs(src.data<float>()[i]) + 1e-6f);
  for (int64_t i = 0; i < up.numel(); ++i)
    ASSERT_NEAR(up.data<float>()[i], src_up.data<float>()[i], 0.01f * std::fabs(src_up.data<float>()[i]) + 1e-6f);

  // noise_scale: absolute Gaussian noise on each matrix of that expert.
  const std::string noisy = (dir_ / "noisy").string();
  ASSERT_EQ(run({"fuse", mergekit_recipe("uniform_random", "", "    noise_scale: 0.1\n").string(), noisy, "--quiet"}).rc, 0);
  const mf::Tensor n = mf::load_model_weights(noisy).tensors.at(mf::mixtral_moe_names(0).expert(0, mf::kMlpUp)).to_f32();
  double diff = 0;
  for (int64_t i = 0; i < n.numel(); ++i) diff += std::pow(double(n.data<float>()[i]) - src_up.data<float>()[i], 2);
  EXPECT_NEAR(std::sqrt(diff / double(n.numel())), 0.1, 0.02);
  for (float v : router(noisy, 0)) EXPECT_LE(std::fabs(v), 1.0f / std::sqrt(32.0f) + 1e-6f);
}

TEST_F(MergekitFuse, WhatCannotBeBuiltIsRefusedByName) {
  struct Case {
    std::string gate, extra, expert_extra, message;
  };
  const std::vector<Case> cases = {
      {"hidden", "shared_experts:\n  - source_model: models/coder-model\n", "", "'shared_experts'"},
      {"hidden", "architecture: qwen\n", "", "'architecture' = 'qwen'"},
      {"sparse", "", "", "'gate_mode' must be"},
  };
  for (const Case& c : cases) {
    auto r = run({"fuse", mergekit_recipe(c.gate, c.extra, c.expert_extra).string(), (dir_ / "x").string()});
    EXPECT_EQ(r.rc, 1) << c.message;
    EXPECT_TRUE(has(r.err, c.message)) << r.err;
  }
  const fs::path p = dir_ / "hub.yml";
  std::ofstream(p) << "base_model: mistralai/Mistral-7B-v0.1\n"
                      "experts:\n  - source_model: models/coder-model\n    positive_prompts: [a]\n";
  auto hub = run({"fuse", p.string(), (dir_ / "x").string()});
  EXPECT_EQ(hub.rc, 1);
  EXPECT_TRUE(has(hub.err, "is not a local folder or file")) << hub.err;
  EXPECT_TRUE(has(hub.err, "huggingface-cli download mistralai/Mistral-7B-v0.1")) << hub.err;

  std::ofstream(p) << "base_model: models/coder-model+adapters/lora\n"
                      "experts:\n  - source_model: models/coder-model\n    positive_prompts: [a]\n";
  auto lora = run({"fuse", p.string(), (dir_ / "x").string()});
  EXPECT_TRUE(has(lora.err, "LoRA")) << lora.err;

  std::ofstream(p) << "base_model: models/coder-model\ngate_mode: hidden\n"
                      "experts:\n  - source_model: models/coder-model\n    positive_prompts: [same]\n"
                      "  - source_model: models/math-model\n    positive_prompts: [same]\n";
  auto same = run({"fuse", p.string(), (dir_ / "x").string()});
  EXPECT_TRUE(has(same.err, "same positive and negative prompts")) << same.err;

  std::ofstream(p) << "base_model: models/coder-model\n"
                      "experts:\n  - source_model: models/coder-model\n    positive_prompts: [a]\n"
                      "  - source_model: models/math-model\n";
  auto none = run({"fuse", p.string(), (dir_ / "x").string()});
  EXPECT_TRUE(has(none.err, "'experts[1].positive_prompts' is required")) << none.err;

  auto no_out = run({"fuse", mergekit_recipe("random").string()});
  EXPECT_EQ(no_out.rc, 2);
  EXPECT_TRUE(has(no_out.err, "names no output directory")) << no_out.err;

  auto dtype = run({"fuse", mergekit_recipe("random", "").string(), "--set", "dtype=float8", (dir_ / "x").string()});
  EXPECT_TRUE(has(dtype.err, "'dtype' must be float32, float16 or bfloat16")) << dtype.err;

  auto typo = run({"fuse", mergekit_recipe("random", "tokenizer_source: union\n").string(), (dir_ / "x").string()});
  EXPECT_TRUE(has(typo.err, "tokenizer_source")) << typo.err;
  EXPECT_FALSE(fs::exists(dir_ / "x"));  // nothing half-written
}

}  // namespace

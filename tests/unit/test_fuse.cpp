// Fusion and upcycling on tiny random models saved as HF directories: the fused model keeps the
// skeleton's shared tensors and each source's MLP as its expert, computes what its source does
// when every route leads to that source's MLP, saves in the Mixtral layout, reloads with
// bit-identical logits, and refuses mismatched sources naming source, tensor and shapes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mapped_file.h"
#include "fuse/fuse.h"
#include "fuse/router_init.h"
#include "model/tensor_names.h"
#include "infer/model_files.h"
#include "io/safetensors.h"
#include "model/init.h"
#include "model/kv_cache.h"
#include "model/load.h"
#include "model/save.h"
#include "model/transformer.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;

namespace {

const char* kText = "the quick brown fox jumps over the lazy dog. write code, solve math, tell a story!";

mf::ModelConfig dense_config(int vocab) {
  mf::ModelConfig c;
  c.model_type = "llama";
  c.vocab_size = vocab;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_layers = 3;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.max_position_embeddings = 128;
  c.tie_word_embeddings = true;
  return c;
}

class Fuse : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("moeforge_fuse_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    tok_ = mf::make_char_tokenizer(kText);
    // The skeleton and three sources that share its attention and embeddings but each have
    // their own MLPs (as domain experts trained with everything else frozen do).
    skeleton_ = save(mf::init_random_weights(dense_config(tok_->vocab_size()), 1), "skeleton");
    for (int e = 0; e < 3; ++e) {
      mf::ModelWeights w = mf::init_random_weights(dense_config(tok_->vocab_size()), 1);
      const mf::ModelWeights other = mf::init_random_weights(dense_config(tok_->vocab_size()), 10 + uint64_t(e));
      for (auto& [name, t] : w.tensors)
        if (name.find(".mlp.") != std::string::npos) t = other.tensors.at(name);
      sources_.push_back(save(std::move(w), "source" + std::to_string(e)));
    }
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string save(mf::ModelWeights w, const std::string& name) {
    const fs::path d = dir_ / name;
    mf::save_model_weights(w, d.string());
    mf::save_char_tokenizer(*tok_, (d / mf::kCharTokenizerFile).string());
    return d.string();
  }

  mf::FuseOptions options(std::vector<int> which) const {
    mf::FuseOptions o;
    o.skeleton = skeleton_;
    const char* names[] = {"Coder", "Thinker", "Writer"};
    for (int e : which) o.experts.push_back({names[e], sources_[size_t(e)]});
    return o;
  }

  static mf::Tensor logits(mf::ModelWeights w, const std::vector<int32_t>& ids) {
    mf::Transformer t(std::move(w));
    mf::KVCache cache(t.config(), int(ids.size()));
    mf::ForwardOptions fo;
    fo.all_logits = true;
    return t.forward(ids, 1, cache, fo);
  }

  fs::path dir_;
  std::unique_ptr<mf::Tokenizer> tok_;
  std::string skeleton_;
  std::vector<std::string> sources_;
};

bool same_bytes(const mf::Tensor& a, const mf::Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

double max_abs_diff(const mf::Tensor& a, const mf::Tensor& b) {
  double d = 0;
  for (int64_t i = 0; i < a.numel(); ++i) d = std::max(d, double(std::fabs(a.data<float>()[i] - b.data<float>()[i])));
  return d;
}

TEST_F(Fuse, ExpertsAreTheSourcesMlpsAndSharedTensorsTheSkeletons) {
  const mf::ModelWeights moe = mf::fuse_experts(options({0, 1, 2}));
  EXPECT_EQ(moe.config.model_type, "mixtral");
  EXPECT_EQ(moe.config.num_experts, 3);
  EXPECT_EQ(moe.config.top_k, 2);
  EXPECT_EQ(moe.config.expert_names, (std::vector<std::string>{"Coder", "Thinker", "Writer"}));
  const mf::ModelWeights skel = mf::load_model_weights(skeleton_);
  for (int e = 0; e < 3; ++e) {
    const mf::ModelWeights src = mf::load_model_weights(sources_[size_t(e)]);
    for (int l = 0; l < 3; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".mlp.";
      EXPECT_TRUE(same_bytes(moe.tensors.at(mf::mixtral_moe_names(l).expert(e, mf::kMlpGate)),
                             src.tensors.at(p + "gate_proj.weight")));
      EXPECT_TRUE(same_bytes(moe.tensors.at(mf::mixtral_moe_names(l).expert(e, mf::kMlpUp)),
                             src.tensors.at(p + "up_proj.weight")));
      EXPECT_TRUE(same_bytes(moe.tensors.at(mf::mixtral_moe_names(l).expert(e, mf::kMlpDown)),
                             src.tensors.at(p + "down_proj.weight")));
    }
  }
  for (const auto& [name, t] : skel.tensors) {
    if (name.find(".mlp.") != std::string::npos) continue;
    EXPECT_TRUE(same_bytes(moe.tensors.at(name), t)) << name;
  }
  for (const auto& [name, t] : moe.tensors) EXPECT_EQ(name.find(".mlp."), std::string::npos) << name;
}

TEST_F(Fuse, EveryRouteToOneSourceGivesThatSourcesLogits) {
  // Three slots all holding source 1: whatever the router does, the FFN is source 1's MLP
  // with weights that sum to one.
  mf::FuseOptions o = options({1});
  o.experts = {{"a", sources_[1]}, {"b", sources_[1]}, {"c", sources_[1]}};
  mf::ModelWeights moe = mf::fuse_experts(o);
  mf::init_routers_random(moe, 5, 0.5f);
  const std::vector<int32_t> ids = tok_->encode("write code, solve math");
  const mf::Tensor fused = logits(std::move(moe), ids);
  const mf::Tensor dense = logits(mf::load_model_weights(sources_[1]), ids);
  EXPECT_LT(max_abs_diff(fused, dense), 2e-5);
}

TEST_F(Fuse, SavedInTheMixtralLayoutAndReloadedBitForBit) {
  mf::ModelWeights moe = mf::fuse_experts(options({0, 1, 2}));
  mf::init_routers_random(moe, 3);
  const std::vector<int32_t> ids = tok_->encode("tell a story");
  const mf::Tensor before = logits(moe, ids);
  const fs::path out = dir_ / "fused";
  mf::save_model_weights(moe, out.string());
  mf::copy_tokenizer_files(skeleton_, out.string());
  EXPECT_TRUE(same_bytes(before, logits(mf::load_model_weights(out.string()), ids)));

  const auto cfg = nlohmann::json::parse(mf::read_text_file((out / "config.json").string()));
  EXPECT_EQ(cfg["architectures"], nlohmann::json::array({"MixtralForCausalLM"}));
  EXPECT_EQ(cfg["model_type"], "mixtral");
  EXPECT_EQ(cfg["num_local_experts"], 3);
  EXPECT_EQ(cfg["num_experts_per_tok"], 2);
  EXPECT_EQ(cfg["intermediate_size"], 48);
  EXPECT_TRUE(cfg.contains("router_aux_loss_coef"));
  EXPECT_EQ(cfg["tie_word_embeddings"], true);
  EXPECT_EQ(cfg["moe_num_experts"], 3);
  EXPECT_EQ(cfg["moe_top_k"], 2);
  EXPECT_EQ(cfg["expert_names"], nlohmann::json::array({"Coder", "Thinker", "Writer"}));
  EXPECT_EQ(cfg["router_policy"], "softmax_topk");
  const mf::SafetensorsFile st = mf::SafetensorsFile::open((out / "model.safetensors").string());
  for (int l = 0; l < 3; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".block_sparse_moe.";
    EXPECT_EQ(st.tensors.at(p + "gate.weight").shape(), (mf::Shape{3, 32}));
    for (int e = 0; e < 3; ++e) {
      const std::string x = p + "experts." + std::to_string(e) + ".";
      EXPECT_EQ(st.tensors.at(x + "w1.weight").shape(), (mf::Shape{48, 32}));
      EXPECT_EQ(st.tensors.at(x + "w3.weight").shape(), (mf::Shape{48, 32}));
      EXPECT_EQ(st.tensors.at(x + "w2.weight").shape(), (mf::Shape{32, 48}));
      EXPECT_EQ(st.tensors.at(x + "w1.weight").dtype(), mf::DType::F32);
    }
    EXPECT_EQ(st.tensors.count("model.layers." + std::to_string(l) + ".mlp.gate_proj.weight"), 0u);
  }
  EXPECT_EQ(st.tensors.count("lm_head.weight"), 0u);  // tied
  EXPECT_TRUE(fs::exists(out / mf::kCharTokenizerFile));
}

// transformers 5 saves Mixtral experts packed: mlp.experts.gate_up_proj [E, 2I, H] (gate rows
// first) and mlp.experts.down_proj [E, H, I], with the router at mlp.gate. Such a directory
// loads into the same model as the classic per-expert layout.
TEST_F(Fuse, PackedExpertLayoutLoadsToTheSameLogits) {
  mf::ModelWeights moe = mf::fuse_experts(options({0, 1, 2}));
  mf::init_routers_random(moe, 4);
  const std::vector<int32_t> ids = tok_->encode("solve math");
  const mf::Tensor classic = logits(moe, ids);

  const int64_t E = 3, H = 32, I = 48;
  std::vector<std::pair<std::string, mf::Tensor>> packed;
  for (const auto& [name, t] : moe.tensors)
    if (name.find(".block_sparse_moe.") == std::string::npos) packed.emplace_back(name, t);
  for (int l = 0; l < 3; ++l) {
    const std::string mlp = "model.layers." + std::to_string(l) + ".mlp.";
    mf::Tensor gate_up = mf::Tensor::empty(mf::DType::F32, {E, 2 * I, H});
    mf::Tensor down = mf::Tensor::empty(mf::DType::F32, {E, H, I});
    for (int e = 0; e < E; ++e) {
      const auto part = [&](int which) { return moe.tensors.at(mf::mixtral_moe_names(l).expert(e, which)); };
      float* gu = gate_up.data<float>() + e * 2 * I * H;
      std::memcpy(gu, part(mf::kMlpGate).raw(), size_t(I * H) * 4);
      std::memcpy(gu + I * H, part(mf::kMlpUp).raw(), size_t(I * H) * 4);
      std::memcpy(down.data<float>() + e * H * I, part(mf::kMlpDown).raw(), size_t(H * I) * 4);
    }
    packed.emplace_back(mlp + "experts.gate_up_proj", gate_up);
    packed.emplace_back(mlp + "experts.down_proj", down);
    packed.emplace_back(mlp + "gate.weight",
                        moe.tensors.at("model.layers." + std::to_string(l) + ".block_sparse_moe.gate.weight"));
  }
  const fs::path out = dir_ / "packed";
  mf::save_model_weights(moe, out.string());  // config.json; the weights are replaced below
  fs::remove(out / "model.safetensors");
  mf::save_safetensors((out / "model.safetensors").string(), packed);
  EXPECT_TRUE(same_bytes(classic, logits(mf::load_model_weights(out.string()), ids)));

  // A packed tensor of the wrong shape names itself and both shapes.
  for (auto& [name, t] : packed)
    if (name == "model.layers.1.mlp.experts.down_proj") t = mf::Tensor::zeros(mf::DType::F32, {E, I, H});
  mf::save_safetensors((out / "model.safetensors").string(), packed);
  try {
    mf::load_model_weights(out.string());
    FAIL() << "a wrongly shaped packed tensor was accepted";
  } catch (const mf::Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.1.mlp.experts.down_proj' has shape [3, 48, 32], expected [3, 32, 48]"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(Fuse, AveragedSharedTensorsAreTheMean) {
  mf::FuseOptions o = options({0, 1});
  o.average_shared = true;
  // Give source 0 a different norm so the mean is visible.
  mf::ModelWeights s0 = mf::load_model_weights(sources_[0]);
  mf::ModelWeights changed;
  changed.config = s0.config;
  for (const auto& [name, t] : s0.tensors) changed.tensors[name] = t.to_f32();
  std::fill_n(changed.tensors.at("model.norm.weight").data<float>(), 32, 3.0f);
  o.experts[0].path = save(std::move(changed), "source0_norm3");
  const mf::ModelWeights moe = mf::fuse_experts(o);
  EXPECT_FLOAT_EQ(moe.tensors.at("model.norm.weight").data<float>()[0], 2.0f);  // (3 + 1) / 2
}

TEST_F(Fuse, MismatchedSourcesAreClearErrors) {
  auto error_of = [](const mf::FuseOptions& o) {
    try {
      mf::fuse_experts(o);
    } catch (const mf::Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  mf::ModelConfig wide = dense_config(tok_->vocab_size());
  wide.intermediate_size = 64;
  const std::string wide_dir = save(mf::init_random_weights(wide, 2), "wide");
  mf::FuseOptions o = options({0});
  o.experts.push_back({"Wide", wide_dir});
  std::string e = error_of(o);
  EXPECT_NE(e.find(wide_dir + ": intermediate_size is 64 but the skeleton"), std::string::npos) << e;

  o = options({0, 1});
  o.experts[1].name = "Coder";
  EXPECT_NE(error_of(o).find("two experts are named 'Coder'"), std::string::npos);

  // Same shapes, another vocabulary: the tokenizers must agree.
  const fs::path other = dir_ / "other_tok";
  fs::create_directories(other);
  fs::copy(sources_[0], other, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  o = options({0});
  o.experts.push_back({"Other", other.string()});
  // One more character: a vocabulary of another size.
  mf::save_char_tokenizer(*mf::make_char_tokenizer(std::string(kText) + "#"), (other / mf::kCharTokenizerFile).string());
  e = error_of(o);
  EXPECT_NE(e.find(other.string() + ": tokenizer has"), std::string::npos) << e;

  o = options({0, 1});
  o.top_k = 3;
  EXPECT_NE(error_of(o).find("top_k 3 must be in [1, 2]"), std::string::npos);
}

TEST_F(Fuse, UpcycledCopiesComputeTheDenseModel) {
  const mf::ModelWeights dense = mf::load_model_weights(sources_[2]);
  mf::ModelWeights moe = mf::upcycle(dense, 4, 2, 0.0f, 0);
  mf::init_routers_random(moe, 1, 0.3f);
  EXPECT_EQ(moe.config.num_experts, 4);
  const std::vector<int32_t> ids = tok_->encode("jumps over");
  EXPECT_LT(max_abs_diff(logits(std::move(moe), ids), logits(mf::load_model_weights(sources_[2]), ids)), 2e-5);
  const mf::ModelWeights noisy = mf::upcycle(dense, 2, 1, 0.01f, 7);
  EXPECT_FALSE(same_bytes(noisy.tensors.at(mf::mixtral_moe_names(0).expert(0, mf::kMlpGate)),
                          noisy.tensors.at(mf::mixtral_moe_names(0).expert(1, mf::kMlpGate))));
}

TEST_F(Fuse, PromptRoutersHaveEqualRowsAndPreferTheirOwnPrompts) {
  mf::ModelWeights moe = mf::fuse_experts(options({0, 1, 2}));
  mf::Transformer skeleton(mf::load_model_weights(skeleton_));
  const std::vector<mf::ExpertPrompts> prompts = {
      {{"write code, write code", "code the fox"}, {}},
      {{"solve math, solve math", "math over the dog"}, {"tell a story"}},
      {{"tell a story, tell a story", "a lazy story"}, {}}};
  for (mf::PromptHidden where : {mf::PromptHidden::ffn_input_mean, mf::PromptHidden::layer_input_last}) {
    mf::init_routers_from_prompts(moe, skeleton, *tok_, prompts, where, 1.0f);
    for (int l = 0; l < 3; ++l) {
      const mf::Tensor& r = moe.tensors.at(mf::mixtral_moe_names(l).router());
      ASSERT_EQ(r.shape(), (mf::Shape{3, 32}));
      // Centred, then every row scaled to the same length: no expert starts out favoured.
      double norms[3] = {0, 0, 0};
      for (int e = 0; e < 3; ++e)
        for (int64_t i = 0; i < 32; ++i) {
          const float w = r.data<float>()[e * 32 + i];
          ASSERT_TRUE(std::isfinite(w));
          norms[e] += double(w) * w;
        }
      EXPECT_GT(norms[0], 0.0);
      EXPECT_NEAR(norms[1], norms[0], 1e-4 * norms[0]);
      EXPECT_NEAR(norms[2], norms[0], 1e-4 * norms[0]);
    }
  }
  // With the router's own view (FFN input), each expert's first prompt ranks it first in the
  // router of every layer.
  mf::init_routers_from_prompts(moe, skeleton, *tok_, prompts, mf::PromptHidden::ffn_input_mean, 1.0f);
  mf::Transformer fused(moe);
  for (int e = 0; e < 3; ++e) {
    const std::vector<int32_t> ids = tok_->encode(prompts[size_t(e)].positive[0]);
    mf::KVCache cache(fused.config(), int(ids.size()));
    std::vector<mf::Tensor> router_logits;
    mf::ForwardOptions fo;
    fo.router_logits = &router_logits;
    fused.forward(ids, 1, cache, fo);
    // Layer 0 reads the same states the skeleton produced, so its decision is exact.
    std::vector<double> mean(3, 0.0);
    for (size_t t = 0; t < ids.size(); ++t)
      for (int x = 0; x < 3; ++x) mean[size_t(x)] += router_logits[0].data<float>()[t * 3 + size_t(x)];
    EXPECT_EQ(std::max_element(mean.begin(), mean.end()) - mean.begin(), e) << "expert " << e;
  }
  EXPECT_THROW(mf::init_routers_from_prompts(moe, skeleton, *tok_, {{{}, {}}, {{"x"}, {}}, {{"y"}, {}}},
                                             mf::PromptHidden::ffn_input_mean),
               mf::Error);
}

}  // namespace

// Whole-model training forward/backward against PyTorch autograd (gen_training.py): the loss
// parts and the gradient of every parameter of tiny dense and MoE models, with masked targets
// and the routers' aux losses; and with freezing (frozen tensors get no gradient, the rest
// are unchanged).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compare.h"
#include "io/safetensors.h"
#include "manifest.h"
#include "model/load.h"
#include "model/trainable_transformer.h"

namespace {

using nlohmann::json;

const json* meta() {
  static const json m = [] {
    std::ifstream in(mf::test::fixture_dir() / "meta.json");
    return in ? json::parse(in) : json();
  }();
  return m.is_null() ? nullptr : &m;
}


void check_gradients(const std::string& name, const std::function<bool(const std::string&)>& frozen) {
  ASSERT_NE(meta(), nullptr) << "no fixtures in " << mf::test::fixture_dir() << " (ctest runs gen_training.py first)";
  const json& m = (*meta())[name];
  mf::TrainableTransformer model(mf::load_model_weights((mf::test::fixture_dir() / name).string()), frozen);
  std::vector<int32_t> tokens, targets;
  for (const auto& row : m["tokens"]) for (int v : row) tokens.push_back(v);
  for (const auto& row : m["targets"]) for (int v : row) targets.push_back(v);
  mf::StepOptions opts;
  opts.lb_coef = m["lb_coef"];
  opts.z_coef = m["z_coef"];
  const mf::TrainingLoss loss = model.forward_backward(tokens, targets, 2, opts);
  EXPECT_EQ(loss.lm_tokens, m["counted"].get<int64_t>());
  EXPECT_NEAR(loss.lm_sum, m["lm_sum"].get<double>(), 1e-4 * m["lm_sum"].get<double>());
  EXPECT_NEAR(loss.lb, m["lb"].get<double>(), 1e-5 + 1e-4 * m["lb"].get<double>());
  EXPECT_NEAR(loss.z, m["z"].get<double>(), 1e-5 + 1e-4 * m["z"].get<double>());
  const auto want = mf::load_safetensors((mf::test::fixture_dir() / (name + ".grads.safetensors")).string());
  int compared = 0;
  for (const auto& [tensor, g] : want) {
    const std::vector<float>* got = model.grad(tensor);
    if (frozen(tensor)) {
      EXPECT_EQ(got, nullptr) << tensor << " is frozen but has a gradient buffer";
      continue;
    }
    ASSERT_NE(got, nullptr) << "no gradient for " << tensor;
    const mf::Tensor w = g.to_f32();
    ASSERT_EQ(got->size(), size_t(w.numel())) << tensor;
    std::vector<float> ref(w.data<float>(), w.data<float>() + w.numel());
    // fp32 forward and backward through every layer against a float64 reference: the worst
    // entries, those ~100x below the tensor's typical size, land at 1-1.3e-4 relative.
    mf::test::expect_close(*got, ref, name + " " + tensor, 3e-4);
    ++compared;
  }
  EXPECT_GT(compared, 0);
  ::testing::Test::RecordProperty("tensors_compared", compared);
}

TEST(TrainingReference, DenseLlamaTiedGqa) { check_gradients("llama_tied", [](const std::string&) { return false; }); }

TEST(TrainingReference, Qwen2WithBiases) { check_gradients("qwen2_bias", [](const std::string&) { return false; }); }

TEST(TrainingReference, MixtralMoeWithAuxLosses) {
  check_gradients("mixtral", [](const std::string&) { return false; });
}

TEST(TrainingReference, DenseFirstLayerPyramidSharedExpertTopKSoftmaxWithCapacity) {
  check_gradients("moe_structures", [](const std::string&) { return false; });
}

TEST(TrainingReference, SwitchWithCapacitySelectionBiasAndResidualSharedExpert) {
  check_gradients("switch_residual", [](const std::string&) { return false; });
}

TEST(TrainingReference, ExpertChoice) { check_gradients("expert_choice", [](const std::string&) { return false; }); }

// Router-only training of a fused MoE: experts, attention and embeddings frozen. The frozen
// tensors get no gradient; the routers', norms' and head's gradients are the full ones.
TEST(TrainingReference, MixtralFrozenExpertsAttentionEmbeddings) {
  check_gradients("mixtral", [](const std::string& n) {
    return n.find(".experts.") != std::string::npos || n.find("self_attn") != std::string::npos ||
           n.find("embed_tokens") != std::string::npos;
  });
}

TEST(TrainingReference, TiedEmbeddingFrozenStillTrainsTheRest) {
  check_gradients("llama_tied", [](const std::string& n) { return n == "model.embed_tokens.weight"; });
}

}  // namespace

// train.recompute (activation recomputation per layer): the backward runs each layer's forward
// again from its kept input, so losses and every gradient must equal the stored-activation run
// bit for bit, for every routing path that draws noise, drops over capacity or picks by expert,
// with a shared expert and a dense layer among the MoE ones; and the routing statistics count
// each forward once.
#include <gtest/gtest.h>

#include <cstring>

#include "core/error.h"
#include "model/init.h"
#include "model/trainable_transformer.h"

namespace {

mf::ModelConfig tiny(mf::RouterPolicy policy) {
  mf::ModelConfig c;
  c.model_type = "mixtral";
  c.vocab_size = 61;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_layers = 3;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.num_experts = 4;
  c.top_k = policy == mf::RouterPolicy::Switch ? 1 : 2;
  c.max_position_embeddings = 64;
  c.routing.policy = policy;
  c.routing.capacity_factor = policy == mf::RouterPolicy::SoftmaxTopK ? 0.0 : 1.0;  // drops rows
  return c;
}

struct StepResult {
  mf::TrainingLoss loss;
  std::vector<std::vector<float>> grads;
  std::vector<mf::RoutingTally> tallies;
};

StepResult two_steps(const mf::ModelConfig& c, bool recompute) {
  mf::TrainableTransformer model(mf::init_random_weights(c, 11), [](const std::string&) { return false; });
  const int batch = 2, T = 24;
  std::vector<int32_t> tokens(size_t(batch * T)), targets(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = int32_t((i * 37 + 5) % size_t(c.vocab_size));
    targets[i] = i % 7 == 0 ? -1 : int32_t((i * 11 + 3) % size_t(c.vocab_size));  // some unscored
  }
  mf::StepOptions o;
  o.lb_coef = 0.01f;
  o.z_coef = 0.001f;
  o.recompute = recompute;
  StepResult r;
  for (int step = 0; step < 2; ++step) {  // two calls: gradients accumulate, buffers are reused
    o.noise_seed = 100 + uint64_t(step);
    const mf::TrainingLoss l = model.forward_backward(tokens, targets, batch, o);
    r.loss.lm_sum += l.lm_sum;
    r.loss.lb += l.lb;
    r.loss.z += l.z;
  }
  for (const mf::TrainableParam& p : model.trainable_params())
    r.grads.emplace_back(p.grad.begin(), p.grad.end());
  r.tallies = model.routing_stats();
  return r;
}

void expect_identical(const mf::ModelConfig& c, const char* what) {
  const StepResult kept = two_steps(c, false), again = two_steps(c, true);
  EXPECT_EQ(kept.loss.lm_sum, again.loss.lm_sum) << what;
  EXPECT_EQ(kept.loss.lb, again.loss.lb) << what;
  EXPECT_EQ(kept.loss.z, again.loss.z) << what;
  ASSERT_EQ(kept.grads.size(), again.grads.size());
  size_t nonzero = 0;
  for (size_t i = 0; i < kept.grads.size(); ++i) {
    ASSERT_EQ(kept.grads[i].size(), again.grads[i].size());
    EXPECT_EQ(0, std::memcmp(kept.grads[i].data(), again.grads[i].data(), kept.grads[i].size() * sizeof(float)))
        << what << ": gradient " << i << " differs";
    for (float g : kept.grads[i]) nonzero += g != 0;
  }
  EXPECT_GT(nonzero, 1000u) << what;  // the comparison compared real gradients
  ASSERT_EQ(kept.tallies.size(), again.tallies.size());
  for (size_t l = 0; l < kept.tallies.size(); ++l) {
    EXPECT_EQ(kept.tallies[l].load, again.tallies[l].load) << what << " layer " << l;  // counted once
    EXPECT_EQ(kept.tallies[l].dropped, again.tallies[l].dropped) << what << " layer " << l;
  }
}

TEST(Recompute, SameLossesGradientsAndStatisticsBitForBit) {
  expect_identical(tiny(mf::RouterPolicy::SoftmaxTopK), "softmax top-k");
  expect_identical(tiny(mf::RouterPolicy::NoisyTopK), "noisy top-k with capacity");
  expect_identical(tiny(mf::RouterPolicy::Switch), "switch with capacity");
  expect_identical(tiny(mf::RouterPolicy::ExpertChoice), "expert choice");
  mf::ModelConfig shared = tiny(mf::RouterPolicy::SoftmaxTopK);
  shared.shared_expert_intermediate_size = 40;  // a gated shared expert
  shared.first_k_dense = 1;                     // layer 0 dense
  expect_identical(shared, "shared expert and a dense layer");
  mf::ModelConfig dense = tiny(mf::RouterPolicy::SoftmaxTopK);
  dense.model_type = "llama";
  dense.num_experts = 0;
  dense.top_k = 0;
  expect_identical(dense, "dense");
}

TEST(Recompute, EvaluationIsUnchanged) {
  const mf::ModelConfig c = tiny(mf::RouterPolicy::SoftmaxTopK);
  mf::TrainableTransformer model(mf::init_random_weights(c, 3), [](const std::string&) { return false; });
  std::vector<int32_t> tokens(40), targets(40);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = targets[i] = int32_t(i % 50);
  const double before = model.evaluate(tokens, targets, 2).lm_sum;
  mf::StepOptions o;
  o.recompute = true;
  model.forward_backward(tokens, targets, 2, o);
  EXPECT_EQ(model.evaluate(tokens, targets, 2).lm_sum, before);  // weights did not move
}

}  // namespace

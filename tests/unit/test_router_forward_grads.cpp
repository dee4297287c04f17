// Routers-only training of a top-1 renormalised MoE (a fused model's router training): the LM loss
// gives such routers no gradient, so the step adds each router's aux-loss gradients during the
// forward and runs no backward. Its losses, router gradients and routing statistics must equal
// the full backward's bit for bit; any other trainable tensor or non-constant gates keep the
// full backward.
#include <gtest/gtest.h>

#include <cstring>

#include "model/init.h"
#include "model/tensor_names.h"
#include "model/trainable_transformer.h"

namespace {

mf::ModelConfig top1(mf::RouterPolicy policy, double capacity_factor) {
  mf::ModelConfig c;
  c.model_type = "mixtral";
  c.vocab_size = 61;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_layers = 3;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.num_experts = 4;
  c.top_k = 1;
  c.max_position_embeddings = 64;
  c.routing.policy = policy;
  c.routing.norm_topk_prob = true;
  c.routing.capacity_factor = capacity_factor;
  return c;
}

struct StepResult {
  mf::TrainingLoss loss;
  std::map<std::string, std::vector<float>> router_grads;
  std::vector<mf::RoutingTally> tallies;
  bool in_forward = false;
};

// Two accumulated steps with every aux loss on: balance, z-loss and per-record domain supervision.
StepResult two_steps(const mf::ModelConfig& c, const std::function<bool(const std::string&)>& frozen) {
  mf::TrainableTransformer model(mf::init_random_weights(c, 5), frozen);
  const int batch = 2, T = 24;
  std::vector<int32_t> tokens(size_t(batch * T)), targets(tokens.size()), route(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = int32_t((i * 37 + 5) % size_t(c.vocab_size));
    const bool answer = i % size_t(T) >= 8;  // the first 8 positions of each row are the prompt
    targets[i] = answer ? int32_t((i * 11 + 3) % size_t(c.vocab_size)) : -1;
    route[i] = answer ? int32_t(i / size_t(T)) + 1 : -1;  // row 0 -> expert 1, row 1 -> expert 2
  }
  mf::StepOptions o;
  o.lb_coef = 0.01f;
  o.z_coef = 0.001f;
  o.domain_coef = 0.02f;
  o.route_targets = route;
  StepResult r;
  for (int step = 0; step < 2; ++step) {
    const mf::TrainingLoss l = model.forward_backward(tokens, targets, batch, o);
    r.loss.lm_sum += l.lm_sum;
    r.loss.lb += l.lb;
    r.loss.z += l.z;
    r.loss.domain += l.domain;
  }
  for (const mf::TrainableParam& p : model.trainable_params())
    if (mf::is_router_name(p.name)) r.router_grads[p.name].assign(p.grad.begin(), p.grad.end());
  r.tallies = model.routing_stats();
  r.in_forward = model.routers_train_in_forward();
  return r;
}

bool all_but_routers(const std::string& name) { return !mf::is_router_name(name); }
// The final norm trains too: the step needs the full backward, whose router gradients are the reference.
bool all_but_routers_and_final_norm(const std::string& name) {
  return !mf::is_router_name(name) && name != "model.norm.weight";
}

void expect_same_as_backward(const mf::ModelConfig& c, const char* what) {
  const StepResult fast = two_steps(c, all_but_routers), full = two_steps(c, all_but_routers_and_final_norm);
  ASSERT_TRUE(fast.in_forward) << what;
  ASSERT_FALSE(full.in_forward) << what;
  EXPECT_EQ(fast.loss.lm_sum, full.loss.lm_sum) << what;
  EXPECT_EQ(fast.loss.lb, full.loss.lb) << what;
  EXPECT_EQ(fast.loss.z, full.loss.z) << what;
  EXPECT_EQ(fast.loss.domain, full.loss.domain) << what;
  EXPECT_GT(fast.loss.domain, 0.0) << what;
  ASSERT_EQ(fast.router_grads.size(), size_t(c.num_layers)) << what;
  ASSERT_EQ(full.router_grads.size(), fast.router_grads.size()) << what;
  for (const auto& [name, g] : fast.router_grads) {
    const std::vector<float>& ref = full.router_grads.at(name);
    ASSERT_EQ(g.size(), ref.size());
    EXPECT_EQ(0, std::memcmp(g.data(), ref.data(), g.size() * sizeof(float))) << what << ": " << name << " differs";
    size_t nonzero = 0;
    for (float v : g) nonzero += v != 0.0f;
    EXPECT_GT(nonzero, g.size() / 2) << what << ": " << name;  // real gradients were compared
  }
  ASSERT_EQ(fast.tallies.size(), full.tallies.size());
  for (size_t l = 0; l < fast.tallies.size(); ++l) {
    EXPECT_EQ(fast.tallies[l].load, full.tallies[l].load) << what << " layer " << l;
    EXPECT_EQ(fast.tallies[l].dropped, full.tallies[l].dropped) << what << " layer " << l;
  }
}

TEST(RouterForwardGrads, SameAsTheFullBackwardBitForBit) {
  expect_same_as_backward(top1(mf::RouterPolicy::SoftmaxTopK, 0.0), "Mixtral top-1");
  expect_same_as_backward(top1(mf::RouterPolicy::SoftmaxTopK, 1.0), "Mixtral top-1 dropping over capacity");
  expect_same_as_backward(top1(mf::RouterPolicy::TopKSoftmax, 0.0), "top-1 then softmax");
}

TEST(RouterForwardGrads, OnlyWhereTheLmLossGivesRoutersNoGradient) {
  auto in_forward = [](const mf::ModelConfig& c) {
    return mf::TrainableTransformer(mf::init_random_weights(c, 5), all_but_routers).routers_train_in_forward();
  };
  EXPECT_TRUE(in_forward(top1(mf::RouterPolicy::SoftmaxTopK, 0.0)));
  mf::ModelConfig top2 = top1(mf::RouterPolicy::SoftmaxTopK, 0.0);
  top2.top_k = 2;  // gates p_i / (p_i + p_j) move with the logits
  EXPECT_FALSE(in_forward(top2));
  mf::ModelConfig unnormalised = top1(mf::RouterPolicy::SoftmaxTopK, 0.0);
  unnormalised.routing.norm_topk_prob = false;  // gate = p_i
  EXPECT_FALSE(in_forward(unnormalised));
  EXPECT_FALSE(in_forward(top1(mf::RouterPolicy::Switch, 1.0)));
  EXPECT_FALSE(in_forward(top1(mf::RouterPolicy::NoisyTopK, 0.0)));
  // Every tensor trains: the full backward.
  EXPECT_FALSE(mf::TrainableTransformer(mf::init_random_weights(top1(mf::RouterPolicy::SoftmaxTopK, 0.0), 5),
                                        [](const std::string&) { return false; })
                   .routers_train_in_forward());
}

}  // namespace

// Routing policies beyond their PyTorch parity (tests/reference/test_routing.cpp): what capacity
// does to tokens, what expert choice guarantees, what the selection bias may and may not change,
// that the inference path routes exactly as training evaluates, that noise follows its seed, and
// that MoE layer structures (shared experts, dense layers, pyramid) train, save and reload.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <numeric>

#include "core/error.h"
#include "infer/router_analysis.h"
#include "model/config_json.h"
#include "model/init.h"
#include "model/kv_cache.h"
#include "model/load.h"
#include "model/tensor_names.h"
#include "moe/router_noise.h"
#include "model/save.h"
#include "model/trainable_transformer.h"
#include "model/transformer.h"
#include "moe/routing.h"
#include "moe/routing_stats.h"

namespace fs = std::filesystem;

namespace {

mf::ModelConfig tiny_moe(mf::RouterPolicy policy, int k = 2) {
  mf::ModelConfig c;
  c.model_type = "mixtral";
  c.vocab_size = 40;
  c.hidden_size = 32;
  c.intermediate_size = 24;
  c.num_layers = 3;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.num_experts = 4;
  c.top_k = k;
  c.max_position_embeddings = 64;
  c.tie_word_embeddings = true;
  c.routing.policy = policy;
  return c;
}

std::vector<int32_t> some_tokens(int n, int vocab, uint32_t seed) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int32_t& t : ids) t = int32_t((seed = seed * 1103515245u + 12345u) >> 16) % vocab;
  return ids;
}

TEST(Routing, CapacityDropsLaterTokensAndSecondChoicesFirst) {
  // 6 tokens, 2 experts, k = 2, every token prefers expert 0: capacity ceil(0.5 * 6 * 2 / 2) = 3.
  std::vector<float> logits;
  for (int t = 0; t < 6; ++t) logits.insert(logits.end(), {2.0f, 0.0f});
  mf::RouteOptions o;
  o.top_k = 2;
  o.capacity_factor = 0.5;
  mf::Routing r;
  mf::route(logits.data(), 6, 2, o, r);
  EXPECT_EQ(r.capacity, 3);
  // First choices (expert 0) of tokens 0-2 fit, 3-5 are dropped; then second choices
  // (expert 1) of tokens 0-2 fit and 3-5 are dropped.
  for (int t = 0; t < 6; ++t) {
    EXPECT_EQ(r.expert[size_t(t * 2)], 0);
    EXPECT_EQ(r.kept[size_t(t * 2)], t < 3) << t;
    EXPECT_EQ(r.kept[size_t(t * 2 + 1)], t < 3) << t;
  }
  EXPECT_EQ(r.dropped, 6);
  EXPECT_EQ(r.unrouted_tokens(), 3);
  EXPECT_EQ(r.load(), (std::vector<int64_t>{3, 3}));
  mf::RoutingTally tally;
  tally.add(r, logits.data(), nullptr);
  EXPECT_DOUBLE_EQ(tally.drop_rate(), 0.5);
  EXPECT_DOUBLE_EQ(tally.capacity_used(), 1.0);
  // Minimum capacity wins over a small factor; factor 0 is dropless.
  o.min_capacity = 5;
  EXPECT_EQ(mf::expert_capacity(o, 6, 2), 5);
  o.capacity_factor = 0;
  mf::route(logits.data(), 6, 2, o, r);
  EXPECT_EQ(r.dropped, 0);
  EXPECT_EQ(r.capacity, 0);
}

TEST(Routing, ExpertChoiceTakesCapacityTokensPerExpertAndLeavesSomeUnrouted) {
  const int T = 10, E = 4;
  std::vector<float> logits(size_t(T * E));
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = float(std::sin(double(i) * 1.7));
  mf::RouteOptions o;
  o.policy = mf::RouterPolicy::ExpertChoice;
  o.top_k = 2;
  o.capacity_factor = 1.0;  // one expert per token on average: ceil(10 / 4) = 3 tokens each
  mf::Routing r;
  mf::route(logits.data(), T, E, o, r);
  EXPECT_EQ(r.capacity, 3);
  EXPECT_EQ(r.load(), (std::vector<int64_t>{3, 3, 3, 3}));
  for (int e = 0; e < E; ++e)  // each expert's tokens are its highest-probability ones, best first
    for (int j = 0; j + 1 < 3; ++j)
      EXPECT_GE(r.probs[size_t(r.token[size_t(e * 3 + j)] * E + e)], r.probs[size_t(r.token[size_t(e * 3 + j + 1)] * E + e)]);
  o.capacity_factor = 0;  // default: top_k experts per token on average
  EXPECT_EQ(mf::expert_capacity(o, T, E), 5);
  mf::RoutingTally tally;
  tally.add(r, logits.data(), nullptr);
  EXPECT_DOUBLE_EQ(tally.drop_rate(), double(r.unrouted_tokens()) / T);
  EXPECT_DOUBLE_EQ(tally.load_cv(), 0.0);
}

TEST(Routing, SelectionBiasChangesTheChoiceButNotTheGate) {
  const std::vector<float> logits = {1.0f, 0.5f, 0.0f, -1.0f};
  const std::vector<float> bias = {0.0f, 0.0f, 0.0f, 5.0f};
  mf::RouteOptions o;
  o.policy = mf::RouterPolicy::Switch;
  o.selection_bias = bias.data();
  mf::Routing r;
  mf::route(logits.data(), 1, 4, o, r);
  EXPECT_EQ(r.expert[0], 3);
  EXPECT_FLOAT_EQ(r.gate[0], r.probs[3]);  // the unbiased probability
  double sum = 0;
  for (float v : logits) sum += std::exp(double(v));
  EXPECT_NEAR(r.gate[0], std::exp(-1.0) / sum, 1e-6);
}

TEST(Routing, BadConfigsAreClearErrors) {
  mf::ModelConfig c = tiny_moe(mf::RouterPolicy::Switch, 2);
  try {
    c.validate();
    FAIL() << "switch with k=2 was accepted";
  } catch (const mf::Error& e) {
    EXPECT_NE(std::string(e.what()).find("num_experts_per_tok to 1"), std::string::npos) << e.what();
  }
  nlohmann::json j = mf::config_to_hf_json(tiny_moe(mf::RouterPolicy::SoftmaxTopK));
  j["router_policy"] = "random_walk";
  try {
    mf::config_from_hf_json(j);
    FAIL() << "an unknown policy was accepted";
  } catch (const mf::Error& e) {
    EXPECT_NE(std::string(e.what()).find("expert_choice"), std::string::npos) << e.what();
  }
  // A user who edits num_experts_per_tok (what transformers and llama.cpp read) and not moeforge's
  // moe_top_k would get another model here than there: refused, naming both.
  nlohmann::json edited = mf::config_to_hf_json(tiny_moe(mf::RouterPolicy::SoftmaxTopK));
  ASSERT_TRUE(edited.contains("moe_top_k"));
  edited["num_experts_per_tok"] = 1;
  try {
    mf::config_from_hf_json(edited);
    FAIL() << "disagreeing top-k keys were accepted";
  } catch (const mf::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'moe_top_k' = 2 but 'num_experts_per_tok' = 1"), std::string::npos)
        << e.what();
  }
  edited["moe_top_k"] = 1;
  EXPECT_EQ(mf::config_from_hf_json(edited).top_k, 1);
  edited["num_local_experts"] = 3;
  EXPECT_THROW(mf::config_from_hf_json(edited), mf::Error);
}

TEST(Routing, RoutingKeysRoundTripThroughConfigJson) {
  mf::ModelConfig c = tiny_moe(mf::RouterPolicy::NoisyTopK);
  c.routing.capacity_factor = 1.25;
  c.routing.eval_capacity_factor = 2.0;
  c.routing.min_capacity = 4;
  c.routing.norm_topk_prob = false;
  c.router_selection_bias = true;
  c.shared_expert_intermediate_size = 16;
  c.shared_expert_gated = false;
  c.first_k_dense = 1;
  c.layer_experts = {0, 2, 4};
  const mf::ModelConfig back = mf::config_from_hf_json(mf::config_to_hf_json(c));
  EXPECT_EQ(back.routing.policy, mf::RouterPolicy::NoisyTopK);
  EXPECT_EQ(back.routing.capacity_factor, 1.25);
  EXPECT_EQ(back.routing.eval_capacity_factor, 2.0);
  EXPECT_EQ(back.routing.min_capacity, 4);
  EXPECT_FALSE(back.routing.norm_topk_prob);
  EXPECT_TRUE(back.router_selection_bias);
  EXPECT_EQ(back.shared_expert_intermediate_size, 16);
  EXPECT_FALSE(back.shared_expert_gated);
  EXPECT_EQ(back.first_k_dense, 1);
  EXPECT_EQ(back.layer_experts, c.layer_experts);
  EXPECT_FALSE(back.layer_is_moe(0));
  EXPECT_EQ(back.experts_in_layer(1), 2);
  EXPECT_EQ(mf::describe_moe(back),
            "noisy_topk, top-2 of 4, capacity 1.25 (eval 2), min 4, selection bias; shared expert 16 (ungated); "
            "dense layers 0; experts per layer 2,4");
}

TEST(Routing, ConfigJsonWritesFloatFieldsWithoutFloat32Noise) {
  mf::ModelConfig c = tiny_moe(mf::RouterPolicy::SoftmaxTopK);
  c.rms_norm_eps = 1e-5f;
  c.router_aux_loss_coef = 0.02f;
  const nlohmann::json j = mf::config_to_hf_json(c);
  // What transformers wrote is what moeforge writes back: 1e-05, not 9.999999747378752e-06.
  EXPECT_EQ(j["rms_norm_eps"].dump(), "1e-05");
  EXPECT_EQ(j["router_aux_loss_coef"].dump(), "0.02");
  const mf::ModelConfig back = mf::config_from_hf_json(j);
  EXPECT_EQ(back.rms_norm_eps, c.rms_norm_eps);
  EXPECT_EQ(back.router_aux_loss_coef, c.router_aux_loss_coef);
}

// Mean loss of the inference forward (the path chat, eval and inspect use) over ids, each
// position predicting the next id (the last one predicting `last_target`, or nothing if < 0).
double inference_loss(const mf::ModelWeights& w, const std::vector<int32_t>& ids, int32_t last_target = -1) {
  mf::Transformer t(w);
  mf::KVCache cache(t.config(), int(ids.size()));
  mf::ForwardOptions fo;
  fo.all_logits = true;
  const mf::Tensor logits = t.forward(ids, 1, cache, fo);
  const int64_t V = t.config().vocab_size;
  double sum = 0;
  const size_t scored = last_target >= 0 ? ids.size() : ids.size() - 1;
  for (size_t i = 0; i < scored; ++i) {
    const float* row = logits.data<float>() + int64_t(i) * V;
    double mx = row[0], z = 0;
    for (int64_t v = 1; v < V; ++v) mx = std::max(mx, double(row[v]));
    for (int64_t v = 0; v < V; ++v) z += std::exp(double(row[v]) - mx);
    sum += mx + std::log(z) - double(row[i + 1 < ids.size() ? ids[i + 1] : last_target]);
  }
  return sum / double(scored);
}

TEST(Routing, InferenceRoutesExactlyAsTrainingEvaluatesForEveryPolicy) {
  for (mf::RouterPolicy p : {mf::RouterPolicy::SoftmaxTopK, mf::RouterPolicy::TopKSoftmax, mf::RouterPolicy::Switch,
                             mf::RouterPolicy::NoisyTopK, mf::RouterPolicy::ExpertChoice}) {
    SCOPED_TRACE(mf::router_policy_name(p));
    mf::ModelConfig c = tiny_moe(p, p == mf::RouterPolicy::Switch ? 1 : 2);
    c.routing.capacity_factor = 1.0;
    c.routing.eval_capacity_factor = p == mf::RouterPolicy::ExpertChoice ? 1.5 : 0.75;
    c.shared_expert_intermediate_size = 16;
    c.router_selection_bias = p != mf::RouterPolicy::ExpertChoice;
    mf::ModelWeights w = mf::init_random_weights(c, 3, 0.2f);
    const std::vector<int32_t> ids = some_tokens(20, c.vocab_size, 7);
    std::vector<int32_t> inputs(ids.begin(), ids.end() - 1), targets(ids.begin() + 1, ids.end());
    mf::TrainableTransformer model(w, [](const std::string&) { return true; });
    const mf::TrainingLoss l = model.evaluate(inputs, targets, 1);
    // Capacity depends on the token count, so both paths see the same 19 tokens.
    EXPECT_NEAR(l.lm(), inference_loss(w, inputs, ids.back()), 2e-5);
  }
}

// The noise of noisy top-k has one home (moe/router_noise) that both devices and the trainer
// call: a changed formula would silently change every resumed run's routing, so it is pinned.
TEST(Routing, RouterNoiseIsPinned) {
  const uint64_t seed = mf::router_noise_step_seed(7, 12, 3);
  EXPECT_EQ(seed, 448002115u);  // (7 * 1000003 + 12) * 64 + 3
  EXPECT_NE(mf::router_noise_step_seed(7, 12, 4), seed);
  EXPECT_NE(mf::router_noise_step_seed(7, 13, 3), seed);
  std::vector<float> g(4);
  mf::draw_router_noise(seed, 2, g);
  const float want[4] = {1.02465928f, -0.216953978f, 0.754021645f, 1.25493264f};
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(g[size_t(i)], want[i]) << i;
  std::vector<float> other(4);
  mf::draw_router_noise(seed, 3, other);  // another layer, another stream
  EXPECT_NE(other, g);
}

TEST(Routing, NoiseFollowsItsSeed) {
  mf::ModelConfig c = tiny_moe(mf::RouterPolicy::NoisyTopK);
  const mf::ModelWeights w = mf::init_random_weights(c, 5, 0.2f);
  const std::vector<int32_t> ids = some_tokens(24, c.vocab_size, 3);
  std::vector<int32_t> inputs(ids.begin(), ids.end() - 1), targets(ids.begin() + 1, ids.end());
  auto router_grad = [&](uint64_t seed) {
    mf::TrainableTransformer m(w, [](const std::string& n) { return n.find(".gate.") == std::string::npos &&
                                                                      n.find(".noise.") == std::string::npos; });
    mf::StepOptions o;
    o.noise_seed = seed;
    m.forward_backward(inputs, targets, 1, o);
    return *m.grad(mf::moe_names(c, 0).noise());
  };
  const std::vector<float> a = router_grad(1), b = router_grad(1), other = router_grad(2);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, other);
  EXPECT_GT(std::accumulate(a.begin(), a.end(), 0.0, [](double s, float v) { return s + std::fabs(v); }), 0.0);
}

TEST(Routing, SelectionBiasMovesTowardsBalanceAndIsABuffer) {
  mf::ModelConfig c = tiny_moe(mf::RouterPolicy::SoftmaxTopK);
  c.router_selection_bias = true;
  const mf::ModelWeights w = mf::init_random_weights(c, 9, 0.2f);
  mf::TrainableTransformer m(w, [](const std::string&) { return false; });
  const std::string bias_name = mf::moe_names(c, 0).selection_bias();
  EXPECT_EQ(m.grad(bias_name), nullptr);  // no gradient, no optimizer state
  ASSERT_EQ(m.buffers().size(), 3u);
  const std::vector<int32_t> ids = some_tokens(33, c.vocab_size, 11);
  std::vector<int32_t> inputs(ids.begin(), ids.end() - 1), targets(ids.begin() + 1, ids.end());
  m.reset_routing_stats();
  m.forward_backward(inputs, targets, 1);
  const std::vector<int64_t> load = m.routing_stats()[0].load;
  ASSERT_TRUE(m.update_selection_bias(0.01f));
  const double mean = double(std::accumulate(load.begin(), load.end(), int64_t(0))) / double(load.size());
  const float* bias = m.weights().tensors.at(bias_name).data<float>();
  for (size_t e = 0; e < load.size(); ++e) {
    const float want = double(load[e]) < mean ? 0.01f : (double(load[e]) > mean ? -0.01f : 0.0f);
    EXPECT_FLOAT_EQ(bias[e], want) << "expert " << e << " load " << load[e];
  }
}

TEST(Routing, SharedExpertsDenseLayersAndPyramidTrainSaveAndReload) {
  mf::ModelConfig c = tiny_moe(mf::RouterPolicy::SoftmaxTopK);
  c.num_layers = 4;
  c.first_k_dense = 1;            // layer 0 dense
  c.layer_experts = {0, 2, 4, 4};  // pyramid
  c.shared_expert_intermediate_size = 16;
  c.shared_expert_gated = true;
  const mf::ModelWeights w = mf::init_random_weights(c, 4, 0.1f);
  EXPECT_TRUE(w.tensors.count("model.layers.0.mlp.gate_proj.weight"));
  EXPECT_TRUE(w.tensors.count("model.layers.1.block_sparse_moe.experts.1.w1.weight"));
  EXPECT_FALSE(w.tensors.count("model.layers.1.block_sparse_moe.experts.2.w1.weight"));
  EXPECT_TRUE(w.tensors.count("model.layers.2.block_sparse_moe.shared_expert.up_proj.weight"));
  int64_t total = 0;
  for (const auto& [name, t] : w.tensors) total += t.numel();
  EXPECT_EQ(total, mf::count_parameters(c, false));

  mf::TrainableTransformer m(w, [](const std::string&) { return false; });
  const std::vector<int32_t> ids = some_tokens(17, c.vocab_size, 5);
  std::vector<int32_t> inputs(ids.begin(), ids.end() - 1), targets(ids.begin() + 1, ids.end());
  m.forward_backward(inputs, targets, 1);
  for (const char* name : {"model.layers.0.mlp.down_proj.weight", "model.layers.1.block_sparse_moe.gate.weight",
                           "model.layers.3.block_sparse_moe.shared_expert_gate.weight",
                           "model.layers.3.block_sparse_moe.shared_expert.down_proj.weight"}) {
    const std::vector<float>* g = m.grad(name);
    ASSERT_NE(g, nullptr) << name;
    EXPECT_GT(std::accumulate(g->begin(), g->end(), 0.0, [](double s, float v) { return s + std::fabs(v); }), 0.0)
        << name;
  }
  // Router analysis handles layers with different expert counts.
  mf::Transformer t(w);
  const mf::PromptRoutes routes = mf::route_prompt(t, ids, 2);
  ASSERT_EQ(routes.layers.size(), 3u);
  EXPECT_EQ(routes.layers[0].layer, 1);
  ASSERT_EQ(routes.layers[0].share.size(), 4u);
  EXPECT_EQ(routes.layers[0].share[2] + routes.layers[0].share[3], 0.0);  // layer 1 has 2 experts
  EXPECT_NEAR(routes.layers[0].share[0] + routes.layers[0].share[1], 1.0, 1e-5);
  const fs::path dir = fs::temp_directory_path() / ("moeforge_routing_" + std::to_string(::getpid()));
  mf::save_model_weights(w, dir.string());
  EXPECT_EQ(inference_loss(mf::load_model_weights(dir.string()), ids), inference_loss(w, ids));
  fs::remove_all(dir);
}

}  // namespace

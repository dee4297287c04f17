// AdamW (parameter groups, decoupled weight decay), global-norm clipping and the warmup-cosine
// schedule against torch.optim.AdamW + clip_grad_norm_ over several steps (gen_optim.py).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "manifest.h"
#include "train/optimizer.h"
#include "train/schedule.h"

namespace {

using nlohmann::json;

TEST(OptimReference, AdamWWithGroupsClippingAndScheduleMatchesTorch) {
  auto params = mf::test::cases_of("adamw_param");
  auto runs = mf::test::cases_of("adamw_run");
  REQUIRE_CASES(runs, "adamw_run");
  ASSERT_EQ(params.size(), 3u);
  const json& run = runs.front();
  const int64_t steps = run["steps"];

  std::vector<mf::ParamGroup> groups;
  for (const json& g : run["groups"]) groups.push_back({g["name"], g["lr"], g["weight_decay"]});
  std::vector<std::vector<float>> value, grad, grads_all, after_all;
  for (const json& p : params) {
    value.push_back(mf::test::load_array<float>(p, "init"));
    grads_all.push_back(mf::test::load_array<float>(p, "grads"));
    after_all.push_back(mf::test::load_array<float>(p, "after"));
    grad.emplace_back(value.back().size(), 0.0f);
  }
  std::vector<mf::TrainableParam> trainable;
  std::vector<std::span<float>> grad_spans;
  for (size_t i = 0; i < params.size(); ++i) {
    trainable.push_back({params[i]["tensor"], value[i], grad[i], params[i]["group"]});
    grad_spans.push_back(grad[i]);
    // The fixture's grouping follows the default decay rule.
    mf::Shape shape = params[i]["shape"].get<mf::Shape>();
    EXPECT_EQ(mf::default_no_decay(params[i]["tensor"], shape), groups[size_t(int(params[i]["group"]))].weight_decay == 0)
        << params[i]["tensor"];
  }
  mf::AdamW opt(groups, trainable, {run["betas"][0], run["betas"][1], run["eps"]});
  const mf::WarmupCosine schedule{run["warmup"], steps, run["min_ratio"]};
  for (int64_t s = 0; s < steps; ++s) {
    for (size_t i = 0; i < grad.size(); ++i)
      std::copy_n(grads_all[i].begin() + int64_t(s) * int64_t(grad[i].size()), grad[i].size(), grad[i].begin());
    const double norm = mf::clip_grad_norm(grad_spans, run["max_norm"]);
    EXPECT_NEAR(norm, run["norms"][size_t(s)].get<double>(), 1e-5 * norm) << "step " << s;
    opt.step(schedule.multiplier(s));
    for (size_t i = 0; i < value.size(); ++i) {
      std::vector<float> want(after_all[i].begin() + int64_t(s) * int64_t(value[i].size()),
                              after_all[i].begin() + int64_t(s + 1) * int64_t(value[i].size()));
      mf::test::expect_close(value[i], want, "param " + std::to_string(i) + " after step " + std::to_string(s), 1e-5);
    }
  }
  EXPECT_EQ(opt.steps_taken(), steps);
}

TEST(OptimReference, RejectsInconsistentParameters) {
  std::vector<float> v(4), g(3);
  EXPECT_THROW(mf::AdamW({{"all", 1e-3f, 0.0f}}, {{"w", v, std::span<const float>(g)}}, {}), mf::Error);
  std::vector<float> g4(4);
  EXPECT_THROW(mf::AdamW({{"all", 1e-3f, 0.0f}}, {{"w", v, g4, 1}}, {}), mf::Error);
  EXPECT_THROW(mf::AdamW({{"all", 1e-3f, 0.0f}}, {{"w", v, g4, 0}, {"w", v, g4, 0}}, {}), mf::Error);
}

}  // namespace

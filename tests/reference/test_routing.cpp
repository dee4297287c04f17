// Every routing policy's MoE FFN against PyTorch (gen_routing.py): softmax top-k with and
// without renormalisation, top-k-then-softmax, Switch top-1, noisy top-k (training noise and
// evaluation), expert choice, capacity with token dropping, minimum capacity, selection bias
// (auxiliary-loss-free balancing), shared experts gated and ungated (residual MoE), and the
// load-balancing loss per batch or per sequence over masked rows, and the domain routing loss
// (router supervision from domain labels). Output, aux losses and the
// gradients of x, router, noise projection, experts and shared expert must agree.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "manifest.h"
#include "model/moe_ffn.h"

namespace {

using nlohmann::json;
using mf::test::cases_of;
using mf::test::expect_close;

std::vector<float> load(const json& c, const std::string& name) { return mf::test::load_array<float>(c, name); }

mf::Tensor tensor(const std::vector<float>& v, mf::Shape shape) { return mf::Tensor::from_f32(std::move(shape), v); }

// Slice e of a stacked [E, rows, cols] array.
std::vector<float> part(const std::vector<float>& all, int e, int64_t n) {
  return {all.begin() + e * n, all.begin() + (e + 1) * n};
}

TEST(RoutingReference, EveryPolicyMatchesPyTorch) {
  auto cases = cases_of("moe_ffn");
  REQUIRE_CASES(cases, "moe_ffn");
  for (const json& c : cases) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const int E = c["E"], k = c["k"], T = c["T"], H = c["H"], I = c["I"], S = c["shared"];
    mf::ModelConfig cfg;
    cfg.model_type = "mixtral";
    cfg.hidden_size = H;
    cfg.intermediate_size = I;
    cfg.num_experts = E;
    cfg.top_k = k;
    cfg.routing.policy = mf::parse_router_policy(c["policy"]);
    cfg.routing.norm_topk_prob = c["renormalize"];
    cfg.routing.capacity_factor = c["capacity_factor"];
    cfg.routing.eval_capacity_factor = c["config_eval_capacity_factor"];
    cfg.routing.min_capacity = c["min_capacity"];
    cfg.shared_expert_intermediate_size = S;
    cfg.shared_expert_gated = c["shared_gate"];

    const std::vector<float> x = load(c, "x"), dy = load(c, "dy"), eps = load(c, "eps");
    const std::vector<float> wg = load(c, "w_gate"), wu = load(c, "w_up"), wd = load(c, "w_down");
    const auto counted = mf::test::load_array<uint8_t>(c, "counted");
    mf::MoeWeights w;
    w.router = tensor(load(c, "w_router"), {E, H});
    w.noise = tensor(load(c, "w_noise"), {E, H});
    if (c["bias"]) w.selection_bias = tensor(load(c, "selection_bias"), {E});
    for (int e = 0; e < E; ++e)
      w.experts.push_back({tensor(part(wg, e, I * H), {I, H}), tensor(part(wu, e, I * H), {I, H}),
                           tensor(part(wd, e, H * I), {H, I})});
    if (S > 0) {
      w.has_shared = true;
      w.shared = {tensor(load(c, "s_gate"), {S, H}), tensor(load(c, "s_up"), {S, H}), tensor(load(c, "s_down"), {H, S})};
      if (c["shared_gate"]) w.shared_gate = tensor(load(c, "s_wg"), {1, H});
    }

    std::vector<float> d_router(size_t(E * H)), d_noise(size_t(E * H)), d_gate(wg.size()), d_up(wu.size()),
        d_down(wd.size()), ds_gate(size_t(S * H)), ds_up(size_t(S * H)), ds_down(size_t(H * S)), ds_wg(static_cast<size_t>(H));
    mf::MoeGrads g;
    g.router = d_router.data();
    g.noise = d_noise.data();
    for (int e = 0; e < E; ++e)
      g.experts.push_back({d_gate.data() + e * I * H, d_up.data() + e * I * H, d_down.data() + e * H * I});
    if (S > 0) {
      g.shared = {ds_gate.data(), ds_up.data(), ds_down.data()};
      g.shared_gate = ds_wg.data();
    }

    const bool training = c["training"];
    mf::MoeActs acts;
    std::vector<float> y(size_t(T * H), 0.0f), dx(size_t(T * H));
    mf::moe_ffn_forward(cfg, w, x.data(), T, training, eps, acts, y.data());
    mf::MoeLossOptions lo;
    lo.lb_coef = c["lb_coef"];
    lo.z_coef = c["z_coef"];
    lo.lb_per_sequence = c["lb_per_sequence"];
    lo.batch = c["batch"];
    std::vector<int32_t> route_targets;
    if (c.contains("route_targets")) {
      route_targets = c["route_targets"].get<std::vector<int32_t>>();
      lo.route_targets = route_targets.data();
      lo.domain_coef = c["domain_coef"];
      lo.domain_per_token = c.value("domain_per_token", false);
    }
    const mf::MoeAuxLosses aux = mf::moe_aux_losses(acts, counted.data(), lo);
    if (c.contains("dropped")) { EXPECT_EQ(acts.routing.dropped, c["dropped"].get<int64_t>()); }
    mf::MoeScratch scratch;
    mf::moe_ffn_backward(cfg, w, g, acts, x.data(), dy.data(), T, counted.data(), lo, scratch, dx.data());

    expect_close(y, load(c, "y"), "y");
    EXPECT_NEAR(aux.lb, c["lb"].get<double>(), 1e-5);
    EXPECT_NEAR(aux.z, c["z"].get<double>(), 1e-4);
    if (c.contains("domain")) { EXPECT_NEAR(aux.domain, c["domain"].get<double>(), 1e-5); }
    expect_close(dx, load(c, "dx"), "dx");
    expect_close(d_router, load(c, "dw_router"), "d router");
    if (cfg.routing.policy == mf::RouterPolicy::NoisyTopK && training) expect_close(d_noise, load(c, "dw_noise"), "d noise");
    expect_close(d_gate, load(c, "dw_gate"), "d experts gate");
    expect_close(d_up, load(c, "dw_up"), "d experts up");
    expect_close(d_down, load(c, "dw_down"), "d experts down");
    if (S > 0) {
      expect_close(ds_gate, load(c, "ds_gate"), "d shared gate_proj");
      expect_close(ds_up, load(c, "ds_up"), "d shared up_proj");
      expect_close(ds_down, load(c, "ds_down"), "d shared down_proj");
      if (c["shared_gate"]) expect_close(ds_wg, load(c, "ds_wg"), "d shared_expert_gate");
    }
  }
}

}  // namespace

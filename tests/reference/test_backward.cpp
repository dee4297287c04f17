// CPU backward kernels vs PyTorch autograd: fixtures from gen_backward.py (fp32 inputs, float64
// autograd gradients stored as fp32).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "compare.h"
#include "core/error.h"
#include "core/tensor.h"
#include "kernels/cpu/activation.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/moe_dispatch.h"
#include "kernels/cpu/router.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/softmax_xent.h"
#include "manifest.h"
#include "moe/routing.h"
#include "model/blocks.h"

namespace {

using nlohmann::json;
using mf::test::cases_of;
using mf::test::expect_close;

template <class T>
std::vector<T> load(const json& c, const std::string& name) {
  return mf::test::load_array<T>(c, name);
}

TEST(BackwardReference, RmsNorm) {
  auto cases = cases_of("rmsnorm");
  REQUIRE_CASES(cases, "rmsnorm");
  for (const json& c : cases) {
    const int64_t rows = c["rows"], dim = c["dim"];
    auto x = load<float>(c, "x");
    auto w = load<float>(c, "weight");
    auto dy = load<float>(c, "dy");
    std::vector<float> dx(x.size(), NAN), dw(size_t(dim), 0.0f);
    mf::rmsnorm_backward(x.data(), w.data(), dy.data(), rows, dim, c["eps"].get<float>(), dx.data(), dw.data());
    expect_close(dx, load<float>(c, "dx"), c["name"].get<std::string>() + " dx");
    expect_close(dw, load<float>(c, "dweight"), c["name"].get<std::string>() + " dweight");
    // Frozen norm weight: no dweight, same dx, written over dy in place.
    mf::rmsnorm_backward(x.data(), w.data(), dy.data(), rows, dim, c["eps"].get<float>(), dy.data(), nullptr);
    expect_close(dy, load<float>(c, "dx"), c["name"].get<std::string>() + " dx in place");
  }
}

TEST(BackwardReference, SiluMul) {
  auto cases = cases_of("silu_mul");
  REQUIRE_CASES(cases, "silu_mul");
  for (const json& c : cases) {
    auto g = load<float>(c, "gate");
    auto u = load<float>(c, "up");
    auto d = load<float>(c, "dout");
    // In place over the inputs, as the training step stores them.
    mf::silu_mul_backward(g.data(), u.data(), d.data(), g.data(), u.data(), int64_t(g.size()));
    expect_close(g, load<float>(c, "dgate"), c["name"].get<std::string>() + " dgate");
    expect_close(u, load<float>(c, "dup"), c["name"].get<std::string>() + " dup");
  }
}

TEST(BackwardReference, Rope) {
  auto cases = cases_of("rope");
  REQUIRE_CASES(cases, "rope");
  for (const json& c : cases) {
    mf::RopeTable table(c["head_dim"], c["max_positions"], c["theta"].get<double>());
    auto d = load<float>(c, "dy");
    auto pos = load<int32_t>(c, "positions");
    mf::rope_backward(d.data(), int64_t(pos.size()), c["heads"], pos.data(), table);
    const auto want = load<float>(c, "dx");
    const int64_t row = int64_t(c["heads"]) * int64_t(c["head_dim"]);
    for (size_t t = 0; t < pos.size(); ++t) {
      std::vector<float> got_t(d.begin() + int64_t(t) * row, d.begin() + int64_t(t + 1) * row);
      std::vector<float> want_t(want.begin() + int64_t(t) * row, want.begin() + int64_t(t + 1) * row);
      // As in the forward test: fp32 angles, one inv_freq ulp apart from PyTorch's.
      mf::test::expect_close_to_scale(got_t, want_t,
                                      c["name"].get<std::string>() + " position " + std::to_string(pos[t]),
                                      1e-4 + 8.0 * pos[t] * std::ldexp(1.0, -24));
    }
  }
}

TEST(BackwardReference, CrossEntropyWithMaskedRows) {
  auto cases = cases_of("xent");
  REQUIRE_CASES(cases, "xent");
  for (const json& c : cases) {
    const int64_t rows = c["rows"], vocab = c["vocab"];
    auto z = load<float>(c, "logits");
    auto t = load<int32_t>(c, "targets");
    std::vector<float> dz(z.size(), NAN);
    const mf::CrossEntropySums s =
        mf::cross_entropy(z.data(), t.data(), rows, vocab, c["grad_scale"].get<float>(), dz.data());
    EXPECT_EQ(s.counted, c["counted"].get<int64_t>());
    EXPECT_NEAR(s.loss_sum, c["loss_sum"].get<double>(), 1e-5 * std::fabs(c["loss_sum"].get<double>()));
    expect_close(dz, load<float>(c, "dlogits"), c["name"].get<std::string>() + " dlogits");
    for (int64_t i = 0; i < vocab; ++i) ASSERT_EQ(dz[size_t(vocab + i)], 0.0f) << "masked row 1 must get no gradient";
    // Loss only, and the gradient written over the logits.
    EXPECT_EQ(mf::cross_entropy(z.data(), t.data(), rows, vocab, 1.0f, nullptr).counted, s.counted);
    mf::cross_entropy(z.data(), t.data(), rows, vocab, c["grad_scale"].get<float>(), z.data());
    expect_close(z, load<float>(c, "dlogits"), c["name"].get<std::string>() + " dlogits in place");
  }
  std::vector<float> z(4, 0.0f);
  const int32_t bad[1] = {4};
  EXPECT_THROW(mf::cross_entropy(z.data(), bad, 1, 4, 1.0f, nullptr), mf::Error);
}

TEST(BackwardReference, LinearInputGradientForEveryWeightFormat) {
  auto cases = cases_of("linear_dx");
  REQUIRE_CASES(cases, "linear_dx");
  for (const json& c : cases) {
    const int64_t M = c["M"], N = c["N"], K = c["K"];
    const mf::DType dtype = mf::parse_dtype(c["dtype"].get<std::string>());
    auto raw = load<uint8_t>(c, "w");
    mf::Tensor w = mf::Tensor::empty(dtype, {N, K});
    ASSERT_EQ(raw.size(), w.nbytes()) << c["name"];
    std::memcpy(w.raw(), raw.data(), raw.size());
    auto dy = load<float>(c, "dy");
    std::vector<float> dx(size_t(M * K), NAN);
    mf::linear_backward_input(dy.data(), M, N, w, dx.data(), false);
    expect_close(dx, load<float>(c, "dx"), c["name"].get<std::string>());
    auto acc = load<float>(c, "dx0");
    mf::linear_backward_input(dy.data(), M, N, w, acc.data(), true);
    expect_close(acc, load<float>(c, "dx_acc"), c["name"].get<std::string>() + " accumulated");
  }
}

TEST(BackwardReference, LinearWeightAndBiasGradients) {
  auto cases = cases_of("linear_dw");
  REQUIRE_CASES(cases, "linear_dw");
  for (const json& c : cases) {
    const int64_t M = c["M"], N = c["N"], K = c["K"];
    auto x = load<float>(c, "x");
    auto dy = load<float>(c, "dy");
    auto dw = load<float>(c, "dw0");  // accumulates onto what is there
    auto db = load<float>(c, "db0");
    mf::linear_backward_weight(dy.data(), x.data(), M, N, K, dw.data(), db.data());
    expect_close(dw, load<float>(c, "dw"), c["name"].get<std::string>() + " dweight");
    expect_close(db, load<float>(c, "db"), c["name"].get<std::string>() + " dbias");
  }
}

TEST(BackwardReference, CausalGqaAttention) {
  auto cases = cases_of("attention");
  REQUIRE_CASES(cases, "attention");
  for (const json& c : cases) {
    const int64_t T = c["T"], S = c["S"], stride = c["kv_stride"];
    const int H = c["n_heads"], KV = c["n_kv_heads"], D = c["head_dim"];
    auto q = load<float>(c, "q");
    auto k = load<float>(c, "k");
    auto v = load<float>(c, "v");
    auto dout = load<float>(c, "dout");
    std::vector<float> dq(q.size(), NAN), dk(k.size(), 0.0f), dv(v.size(), 0.0f);
    std::vector<float> scratch(mf::attention_backward_scratch_floats(T, S));
    mf::attention_backward(q.data(), k.data(), v.data(), stride, dout.data(), T, S, H, KV, D, 1.0f / std::sqrt(float(D)),
                           dq.data(), dk.data(), dv.data(), scratch.data());
    expect_close(dq, load<float>(c, "dq"), c["name"].get<std::string>() + " dq");
    expect_close(dk, load<float>(c, "dk"), c["name"].get<std::string>() + " dk");
    expect_close(dv, load<float>(c, "dv"), c["name"].get<std::string>() + " dv");
  }
}

TEST(BackwardReference, RouterTopKSoftmax) {
  auto cases = cases_of("router");
  REQUIRE_CASES(cases, "router");
  for (const json& c : cases) {
    const int64_t T = c["T"];
    const int E = c["E"], k = c["k"];
    auto z = load<float>(c, "logits");
    auto idx = load<int32_t>(c, "idx");
    auto dw = load<float>(c, "dweight");
    mf::RouteOptions o;
    o.top_k = k;
    o.renormalize = c["renormalize"];
    mf::Routing r;
    mf::route(z.data(), T, E, o, r);
    ASSERT_EQ(r.expert, idx) << c["name"];
    std::vector<float> dz(z.size(), 0.0f);
    mf::route_backward(z.data(), r, o, dw.data(), dz.data());
    expect_close(dz, load<float>(c, "dlogits"), c["name"].get<std::string>());
  }
}

TEST(BackwardReference, LoadBalancingAndZLossOverUnmaskedRows) {
  auto cases = cases_of("aux");
  REQUIRE_CASES(cases, "aux");
  for (const json& c : cases) {
    const int64_t T = c["T"];
    const int E = c["E"], k = c["k"];
    auto z = load<float>(c, "logits");
    auto idx = load<int32_t>(c, "idx");
    auto mask = load<uint8_t>(c, "mask");
    std::vector<float> dz(z.size(), 0.0f);
    const double lb = mf::load_balancing_loss(z.data(), idx.data(), mask.data(), T, E, k, c["lb_coef"], dz.data());
    const double zl = mf::router_z_loss(z.data(), mask.data(), T, E, c["z_coef"], dz.data());
    EXPECT_NEAR(lb, c["lb"].get<double>(), 1e-6 * std::fabs(c["lb"].get<double>())) << c["name"];
    EXPECT_NEAR(zl, c["z"].get<double>(), 1e-6 * std::fabs(c["z"].get<double>())) << c["name"];
    expect_close(dz, load<float>(c, "dlogits"), c["name"].get<std::string>() + " dlogits");
    for (int64_t t = 0; t < T; ++t) {
      if (mask[size_t(t)]) continue;
      for (int e = 0; e < E; ++e) ASSERT_EQ(dz[size_t(t * E + e)], 0.0f) << "masked row " << t;
    }
  }
}

// The kernels chained as a sparse MoE FFN's forward and backward (router linear, top-k,
// dispatch, SwiGLU experts on their rows only, gated combine) against autograd on the dense
// per-token loop.
TEST(BackwardReference, SparseMoeLayerGradients) {
  auto cases = cases_of("moe_layer");
  REQUIRE_CASES(cases, "moe_layer");
  const json& c = cases.front();
  const int64_t T = c["T"], H = c["H"], I = c["I"];
  const int E = c["E"], k = c["k"];
  auto x = load<float>(c, "x");
  auto wr = load<float>(c, "w_router");
  auto wg = load<float>(c, "w_gate");
  auto wu = load<float>(c, "w_up");
  auto wd = load<float>(c, "w_down");
  auto dy = load<float>(c, "dy");
  auto expert = [&](std::vector<float>& all, int e, int64_t rows, int64_t cols) {
    return mf::Tensor::from_f32({rows, cols}, {all.data() + e * rows * cols, size_t(rows * cols)});
  };
  // Forward, keeping what the backward needs.
  const mf::Tensor router = mf::Tensor::from_f32({E, H}, {wr.data(), wr.size()});
  std::vector<float> logits(size_t(T * E));
  mf::linear(x.data(), T, H, router, nullptr, logits.data());
  mf::RouteOptions o;
  o.top_k = k;
  mf::Routing routing;
  mf::route(logits.data(), T, E, o, routing);
  ASSERT_EQ(routing.expert, load<int32_t>(c, "idx"));
  const mf::DispatchPlan plan = mf::plan_dispatch(routing.expert.data(), routing.gate.data(), T, k, E);
  const int64_t R = T * k;
  std::vector<float> xg(size_t(R * H)), a(size_t(R * I)), b(size_t(R * I)), hcur(size_t(R * I)), out(size_t(R * H));
  mf::moe_gather(x.data(), plan, H, xg.data());
  for (int e = 0; e < E; ++e) {
    const int64_t r0 = plan.offsets[size_t(e)], n = plan.offsets[size_t(e) + 1] - r0;
    if (n == 0) continue;
    mf::linear(xg.data() + r0 * H, n, H, expert(wg, e, I, H), nullptr, a.data() + r0 * I);
    mf::linear(xg.data() + r0 * H, n, H, expert(wu, e, I, H), nullptr, b.data() + r0 * I);
    mf::silu_mul(a.data() + r0 * I, b.data() + r0 * I, hcur.data() + r0 * I, n * I);
    mf::linear(hcur.data() + r0 * I, n, I, expert(wd, e, H, I), nullptr, out.data() + r0 * H);
  }
  // Backward.
  std::vector<float> dout(size_t(R * H)), dgate(size_t(T * k)), dh(size_t(R * I)), dxg(size_t(R * H), 0.0f);
  std::vector<float> dwg(wg.size(), 0.0f), dwu(wu.size(), 0.0f), dwd(wd.size(), 0.0f), dwr(wr.size(), 0.0f);
  mf::moe_scatter_add_backward(dy.data(), out.data(), plan, H, dout.data(), dgate.data());
  for (int e = 0; e < E; ++e) {
    const int64_t r0 = plan.offsets[size_t(e)], n = plan.offsets[size_t(e) + 1] - r0;
    if (n == 0) continue;
    mf::linear_backward_weight(dout.data() + r0 * H, hcur.data() + r0 * I, n, H, I, dwd.data() + e * H * I, nullptr);
    mf::linear_backward_input(dout.data() + r0 * H, n, H, expert(wd, e, H, I), dh.data() + r0 * I, false);
    // a, b become their gradients in place.
    mf::silu_mul_backward(a.data() + r0 * I, b.data() + r0 * I, dh.data() + r0 * I, a.data() + r0 * I,
                          b.data() + r0 * I, n * I);
    mf::linear_backward_weight(a.data() + r0 * I, xg.data() + r0 * H, n, I, H, dwg.data() + e * I * H, nullptr);
    mf::linear_backward_weight(b.data() + r0 * I, xg.data() + r0 * H, n, I, H, dwu.data() + e * I * H, nullptr);
    mf::linear_backward_input(a.data() + r0 * I, n, I, expert(wg, e, I, H), dxg.data() + r0 * H, false);
    mf::linear_backward_input(b.data() + r0 * I, n, I, expert(wu, e, I, H), dxg.data() + r0 * H, true);
  }
  std::vector<float> dx(x.size(), 0.0f), dlogits(logits.size(), 0.0f);
  mf::moe_gather_backward(dxg.data(), plan, H, dx.data());
  mf::route_backward(logits.data(), routing, o, dgate.data(), dlogits.data());
  mf::linear_backward_weight(dlogits.data(), x.data(), T, E, H, dwr.data(), nullptr);
  mf::linear_backward_input(dlogits.data(), T, E, router, dx.data(), true);
  expect_close(dx, load<float>(c, "dx"), "dx");
  expect_close(dwr, load<float>(c, "dw_router"), "d router weight");
  expect_close(dwg, load<float>(c, "dw_gate"), "d expert gate_proj");
  expect_close(dwu, load<float>(c, "dw_up"), "d expert up_proj");
  expect_close(dwd, load<float>(c, "dw_down"), "d expert down_proj");
}

TEST(BackwardReference, EmbeddingWithRepeatedIds) {
  auto cases = cases_of("embedding");
  REQUIRE_CASES(cases, "embedding");
  const json& c = cases.front();
  const int64_t vocab = c["vocab"], H = c["H"], n = c["n"];
  auto ids = load<int32_t>(c, "ids");
  auto dx = load<float>(c, "dx");
  std::vector<float> table(size_t(vocab * H), 0.0f);
  mf::embed_tokens_backward(ids.data(), n, dx.data(), H, vocab, table.data());
  expect_close(table, load<float>(c, "dtable"), "embedding");
  const int32_t bad[1] = {int32_t(vocab)};
  EXPECT_THROW(mf::embed_tokens_backward(bad, 1, dx.data(), H, vocab, table.data()), mf::Error);
}

}  // namespace

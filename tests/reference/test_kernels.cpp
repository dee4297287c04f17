// CPU kernels vs PyTorch: fixtures from gen_kernels.py (inputs + float64-computed outputs).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compare.h"
#include "manifest.h"
#include "moe/routing.h"
#include "core/tensor.h"
#include "kernels/cpu/activation.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/moe_dispatch.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/packed_quant.h"
#include "kernels/cpu/quant.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/router.h"
#include "kernels/cpu/softmax.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr double kTol = 1e-4;

using mf::test::cases_of;
using mf::test::expect_close;
using mf::test::fixture_dir;
using mf::test::manifest;

template <class T>
std::vector<T> load(const json& c, const std::string& name) {
  return mf::test::load_array<T>(c, name);
}

TEST(KernelsReference, Linear) {
  auto cases = cases_of("linear");
  REQUIRE_CASES(cases, "linear");
  int packed_cases = 0;
  for (const json& c : cases) {
    const int64_t M = c["M"], K = c["K"], N = c["N"];
    const mf::DType dtype = mf::parse_dtype(c["dtype"].get<std::string>());
    auto x = load<float>(c, "x");
    auto raw = load<uint8_t>(c, "w");
    auto want = load<float>(c, "y");
    ASSERT_EQ(raw.size(), mf::dtype_bytes(dtype, N * K)) << c["name"];
    mf::Tensor w = mf::Tensor::empty(dtype, {N, K});
    std::memcpy(w.raw(), raw.data(), raw.size());
    std::vector<float> bias = c["bias"].get<bool>() ? load<float>(c, "bias") : std::vector<float>();
    std::vector<float> y(size_t(M * N), -1.0f);
    mf::linear(x.data(), M, K, w, bias.empty() ? nullptr : bias.data(), y.data());
    expect_close(y, want, c["name"]);
    // The packed decode layout with fp32 activations: the same exact result.
    if (M <= mf::kLinearGemvMaxRows && mf::PackedQuantMatrix::supports(w)) {
      mf::LinearWeight lw(w);
      lw.packed = std::make_shared<const mf::PackedQuantMatrix>(w);
      std::fill(y.begin(), y.end(), -1.0f);
      mf::linear(x.data(), M, K, lw, bias.empty() ? nullptr : bias.data(), y.data());
      expect_close(y, want, c["name"].get<std::string>() + " (packed, fp32 activations)");
      ++packed_cases;
    }
  }
  mf::Tensor probe = mf::Tensor::empty(mf::DType::Q4_1, {16, 32});
  if (mf::PackedQuantMatrix::supports(probe)) {
    EXPECT_GE(packed_cases, 18) << "packed cases for Q8_0/Q4_0/Q4_1";
  }
}

// The int8 decode path (PackedQuantMatrix): exact against a float64 reference that quantizes the
// activations the same way, and within activation-rounding distance of the exact product.
TEST(KernelsReference, LinearInt8DecodePath) {
  auto cases = cases_of("linear_int8");
  REQUIRE_CASES(cases, "linear_int8");
  for (const json& c : cases) {
    const int64_t M = c["M"], K = c["K"], N = c["N"];
    const mf::DType dtype = mf::parse_dtype(c["dtype"].get<std::string>());
    auto x = load<float>(c, "x");
    auto raw = load<uint8_t>(c, "w");
    mf::Tensor w = mf::Tensor::empty(dtype, {N, K});
    ASSERT_EQ(raw.size(), w.nbytes()) << c["name"];
    std::memcpy(w.raw(), raw.data(), raw.size());
    if (!mf::PackedQuantMatrix::supports(w)) GTEST_SKIP() << "no AVX-512 VNNI in this build";
    mf::LinearWeight lw(w);
    lw.packed = std::make_shared<const mf::PackedQuantMatrix>(w);
    lw.activations = mf::DecodeActivations::int8;
    std::vector<float> bias(size_t(N), 0.25f), y(size_t(M * N), -1.0f);
    mf::linear(x.data(), M, K, lw, bias.data(), y.data());
    auto want = load<float>(c, "y");
    for (int64_t i = 0; i < M * N; ++i) want[size_t(i)] += 0.25f;
    expect_close(y, want, c["name"]);
    auto exact = load<float>(c, "y_exact");
    for (int64_t i = 0; i < M * N; ++i) exact[size_t(i)] += 0.25f;
    // Activation rounding (step amax/127 per block) moves each output by a few percent of
    // the outputs' typical size at most; a wrong scale or nibble order would move it by ~100%.
    mf::test::Mismatch m = mf::test::compare(y.data(), exact.data(), M * N);
    double sumsq = 0;
    for (float v : exact) sumsq += double(v) * v;
    const double rms = std::sqrt(sumsq / double(exact.size()));
    EXPECT_LT(m.max_abs / rms, 6e-2) << c["name"] << " vs the exact product: " << m.str() << " rms=" << rms;
    EXPECT_GT(m.max_abs, 0.0) << c["name"] << ": the int8 path should differ from the exact one";
  }
}

TEST(KernelsReference, RmsNorm) {
  auto cases = cases_of("rmsnorm");
  REQUIRE_CASES(cases, "rmsnorm");
  for (const json& c : cases) {
    auto x = load<float>(c, "x");
    auto w = load<float>(c, "weight");
    std::vector<float> y(x.size());
    mf::rmsnorm(x.data(), w.data(), c["rows"], c["dim"], c["eps"].get<float>(), y.data());
    expect_close(y, load<float>(c, "y"), c["name"]);
    mf::rmsnorm(x.data(), w.data(), c["rows"], c["dim"], c["eps"].get<float>(), x.data());
    expect_close(x, load<float>(c, "y"), c["name"].get<std::string>() + " in place");
  }
}

TEST(KernelsReference, Rope) {
  auto cases = cases_of("rope");
  REQUIRE_CASES(cases, "rope");
  for (const json& c : cases) {
    mf::RopeTable table(c["head_dim"], c["max_positions"], c["theta"].get<double>());
    auto x = load<float>(c, "x");
    auto pos = load<int32_t>(c, "positions");
    mf::rope_apply(x.data(), int64_t(pos.size()), c["heads"], pos.data(), table);
    // Angles are fp32 (float(pos) * inv_freq) as in HF; inv_freq itself is one fp32 rounding
    // away from PyTorch's (its vectorised pow rounds differently), and at position p that
    // ulp moves the angle by ~p * 2^-24 radians, which moves every entry by that fraction of
    // the vector's size. The tolerance (relative to the vector's rms) grows by exactly that
    // much, so near positions are held to 1e-4 and a wrong theta or pairing still fails by orders.
    const auto want = load<float>(c, "y");
    const int64_t row = int64_t(c["heads"]) * int64_t(c["head_dim"]);
    for (size_t t = 0; t < pos.size(); ++t) {
      std::vector<float> got_t(x.begin() + int64_t(t) * row, x.begin() + int64_t(t + 1) * row);
      std::vector<float> want_t(want.begin() + int64_t(t) * row, want.begin() + int64_t(t + 1) * row);
      const double tol = kTol + 8.0 * pos[t] * std::ldexp(1.0, -24);
      mf::test::expect_close_to_scale(got_t, want_t, c["name"].get<std::string>() + " position " + std::to_string(pos[t]),
                                      tol);
    }
  }
}

TEST(KernelsReference, Attention) {
  auto cases = cases_of("attention");
  REQUIRE_CASES(cases, "attention");
  for (const json& c : cases) {
    const int64_t T = c["T"], S = c["S"];
    const int H = c["n_heads"], KV = c["n_kv_heads"], D = c["head_dim"];
    auto q = load<float>(c, "q");
    auto k = load<float>(c, "k");
    auto v = load<float>(c, "v");
    std::vector<float> out(size_t(T * H * D), -1.0f);
    std::vector<float> scratch(mf::attention_scratch_floats(T, S));
    mf::attention_forward(q.data(), k.data(), v.data(), c["kv_stride"], T, S, H, KV, D,
                          1.0f / std::sqrt(float(D)), out.data(), scratch.data());
    expect_close(out, load<float>(c, "y"), c["name"]);
  }
}

// A 16-bit KV cache changes only what is stored: attention over it is bit for bit attention_forward
// over the same keys and values rounded to that type and widened back (per-query and GEMM paths,
// splits of 128 keys, GQA), and the batched decode gives each sequence that same result.
TEST(KernelsReference, AttentionOverHalfPrecisionCache) {
  auto cases = cases_of("attention");
  REQUIRE_CASES(cases, "attention");
  for (const mf::DType type : {mf::DType::F16, mf::DType::BF16}) {
    for (const json& c : cases) {
      const int64_t T = c["T"], S = c["S"], stride = c["kv_stride"];
      const int H = c["n_heads"], KV = c["n_kv_heads"], D = c["head_dim"];
      const std::string name = c["name"].get<std::string>() + " " + std::string(mf::dtype_name(type));
      auto q = load<float>(c, "q");
      auto k = load<float>(c, "k");
      auto v = load<float>(c, "v");
      std::vector<uint8_t> k16(k.size() * 2), v16(v.size() * 2);
      mf::quantize_row(type, k.data(), k16.data(), int64_t(k.size()));
      mf::quantize_row(type, v.data(), v16.data(), int64_t(v.size()));
      std::vector<float> k_rounded(k.size()), v_rounded(v.size());
      mf::dequantize_row(type, k16.data(), k_rounded.data(), int64_t(k.size()));
      mf::dequantize_row(type, v16.data(), v_rounded.data(), int64_t(v.size()));
      const float scale = 1.0f / std::sqrt(float(D));
      std::vector<float> want(size_t(T * H * D)), got(size_t(T * H * D), -1.0f);
      std::vector<float> scratch(mf::attention_scratch_floats(T, S));
      mf::attention_forward(q.data(), k_rounded.data(), v_rounded.data(), stride, T, S, H, KV, D, scale, want.data(),
                            scratch.data());
      const mf::CacheRows k_rows{k16.data(), type, stride, D}, v_rows{v16.data(), type, stride, D};
      mf::attention_forward_cached(q.data(), k_rows, v_rows, T, S, H, KV, D, scale, got.data(), scratch.data());
      EXPECT_EQ(got, want) << name;
      // The rounding moves the output by about the type's precision, no more.
      mf::test::expect_close_to_scale(got, load<float>(c, "y"), name, type == mf::DType::F16 ? 5e-3 : 4e-2);
      if (T != 1) continue;
      // Two copies of the sequence as a decode batch: each row equals the single query's result.
      const mf::CacheRows keys[] = {k_rows, k_rows}, values[] = {v_rows, v_rows};
      const int64_t lengths[] = {S, S};
      std::vector<float> q2(q), batch_out(2 * size_t(H * D));
      q2.insert(q2.end(), q.begin(), q.end());
      mf::attention_decode_batch(q2.data(), keys, values, lengths, 2, H, KV, D, scale, batch_out.data());
      EXPECT_EQ(std::vector<float>(batch_out.begin(), batch_out.begin() + H * D), want) << name;
      EXPECT_EQ(std::vector<float>(batch_out.begin() + H * D, batch_out.end()), want) << name;
    }
  }
}

TEST(KernelsReference, SiluMul) {
  auto cases = cases_of("silu_mul");
  REQUIRE_CASES(cases, "silu_mul");
  for (const json& c : cases) {
    auto g = load<float>(c, "gate");
    auto u = load<float>(c, "up");
    std::vector<float> y(g.size());
    mf::silu_mul(g.data(), u.data(), y.data(), int64_t(g.size()));
    expect_close(y, load<float>(c, "y"), c["name"]);
  }
}

TEST(KernelsReference, Softmax) {
  auto cases = cases_of("softmax");
  REQUIRE_CASES(cases, "softmax");
  for (const json& c : cases) {
    auto x = load<float>(c, "x");
    mf::softmax_rows(x.data(), c["rows"], c["cols"]);
    expect_close(x, load<float>(c, "y"), c["name"]);
  }
}

TEST(KernelsReference, RouterTopK) {
  auto cases = cases_of("router");
  REQUIRE_CASES(cases, "router");
  for (const json& c : cases) {
    const int64_t T = c["T"];
    const int E = c["E"], k = c["k"];
    auto logits = load<float>(c, "logits");
    mf::RouteOptions o;
    o.top_k = k;
    o.renormalize = c["renormalize"];
    mf::Routing r;
    mf::route(logits.data(), T, E, o, r);
    EXPECT_EQ(r.expert, load<int32_t>(c, "idx")) << c["name"];
    expect_close(r.gate, load<float>(c, "weight"), c["name"]);
  }
}

TEST(KernelsReference, MoeDispatchMatchesDenseLoop) {
  auto cases = cases_of("moe");
  REQUIRE_CASES(cases, "moe");
  for (const json& c : cases) {
    const int64_t T = c["T"], dim = c["dim"], hidden = c["hidden"];
    const int E = c["E"], k = c["k"];
    auto x = load<float>(c, "x");
    auto idx = load<int32_t>(c, "idx");
    auto gate = load<float>(c, "gate");
    mf::DispatchPlan plan = mf::plan_dispatch(idx.data(), gate.data(), T, k, E);
    EXPECT_EQ(plan.offsets, load<int64_t>(c, "offsets"));
    EXPECT_EQ(plan.token, load<int32_t>(c, "plan_token"));
    EXPECT_EQ(plan.gate, load<float>(c, "plan_gate"));

    // Sparse path: gather, one linear pair per expert over its rows only, scatter back.
    std::vector<float> gathered(size_t(T * k * dim)), h(size_t(T * k * hidden)),
        out(size_t(T * k * dim));
    mf::moe_gather(x.data(), plan, dim, gathered.data());
    auto w_up = load<float>(c, "w_up");
    auto w_down = load<float>(c, "w_down");
    for (int e = 0; e < E; ++e) {
      const int64_t r0 = plan.offsets[size_t(e)], rows = plan.offsets[size_t(e) + 1] - r0;
      mf::Tensor up = mf::Tensor::from_f32(
          {hidden, dim}, {w_up.data() + e * hidden * dim, size_t(hidden * dim)});
      mf::Tensor down = mf::Tensor::from_f32(
          {dim, hidden}, {w_down.data() + e * dim * hidden, size_t(dim * hidden)});
      mf::linear(gathered.data() + r0 * dim, rows, dim, up, nullptr, h.data() + r0 * hidden);
      mf::linear(h.data() + r0 * hidden, rows, hidden, down, nullptr, out.data() + r0 * dim);
    }
    auto y = load<float>(c, "y0");
    mf::moe_scatter_add(out.data(), plan, dim, y.data());
    expect_close(y, load<float>(c, "y"), c["name"]);
  }
}

}  // namespace

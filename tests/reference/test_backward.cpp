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
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/softmax_xent.h"
#include "manifest.h"

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

}  // namespace

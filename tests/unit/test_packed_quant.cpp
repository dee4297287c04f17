// PackedQuantMatrix (the int8 decode path) against a plain scalar model of the same arithmetic,
// plus the cases it must refuse. The PyTorch-side check is tests/reference (LinearInt8DecodePath).
#include <gtest/gtest.h>

#include <algorithm>

#include <cmath>
#include <cstring>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/packed_quant.h"
#include "kernels/cpu/quant.h"

using namespace mf;

namespace {

Tensor quantized(DType t, int64_t N, int64_t K, Rng& rng, std::vector<float>* dequantized) {
  std::vector<float> w(size_t(N * K));
  for (auto& v : w) v = rng.normal() * 0.05f;
  Tensor q = Tensor::empty(t, {N, K});
  for (int64_t n = 0; n < N; ++n)
    quantize_row(t, w.data() + n * K, static_cast<uint8_t*>(q.raw()) + dtype_bytes(t, n * K), K);
  dequantized->resize(w.size());
  for (int64_t n = 0; n < N; ++n)
    dequantize_row(t, static_cast<const uint8_t*>(q.raw()) + dtype_bytes(t, n * K), dequantized->data() + n * K, K);
  return q;
}

// The int8 scheme in scalar double arithmetic: activations rounded per block of 32 to
// amax/127 steps, then multiplied by the dequantized weights (d*q + m, or d*(q-8), or d*q).
std::vector<double> scalar_int8(const std::vector<float>& x, int64_t M, int64_t K, const std::vector<float>& w,
                                int64_t N) {
  std::vector<double> xq(x.size());
  for (int64_t r = 0; r < M; ++r)
    for (int64_t b = 0; b < K / 32; ++b) {
      const float* v = x.data() + r * K + b * 32;
      float amax = 0;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(v[i]));
      const float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
      for (int i = 0; i < 32; ++i) xq[size_t(r * K + b * 32 + i)] = std::nearbyint(v[i] * id) * double(d);
    }
  std::vector<double> y(size_t(M * N));
  for (int64_t r = 0; r < M; ++r)
    for (int64_t n = 0; n < N; ++n) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += xq[size_t(r * K + k)] * double(w[size_t(n * K + k)]);
      y[size_t(r * N + n)] = s;
    }
  return y;
}

class PackedQ8 : public ::testing::TestWithParam<DType> {};

TEST_P(PackedQ8, MatchesTheScalarInt8SchemeWithPaddedGroups) {
  Rng rng(11);
  std::vector<float> wdq;
  const int64_t N = 21, K = 96;  // 21 rows: a full group of 16 and a zero-padded one
  Tensor w = quantized(GetParam(), N, K, rng, &wdq);
  if (!PackedQuantMatrix::supports(w)) GTEST_SKIP() << "no AVX-512 VNNI in this build";
  PackedQuantMatrix p(w);
  EXPECT_EQ(p.rows(), N);
  EXPECT_EQ(p.cols(), K);
  for (int64_t M : {1, 2, 8, 13, 32, 77}) {  // 13, 77: full 8-row blocks and a tail
    std::vector<float> x(size_t(M * K));
    for (auto& v : x) v = rng.normal();
    x[3] = 0;
    std::fill(x.begin() + 32, x.begin() + 64, 0.0f);  // a zero block: scale 0, no NaN
    std::vector<float> y(size_t(M * N), NAN);
    p.gemv_int8(x.data(), M, y.data());
    const std::vector<double> want = scalar_int8(x, M, K, wdq, N);
    for (size_t i = 0; i < y.size(); ++i)
      EXPECT_NEAR(y[i], want[i], 1e-5 * (1 + std::fabs(want[i]))) << "M=" << M << " i=" << i;
  }
}

TEST_P(PackedQ8, LinearUsesThePackedCopyForDecodeRowsAndInt8Prompts) {
  Rng rng(5);
  std::vector<float> wdq;
  const int64_t N = 32, K = 64;
  Tensor w = quantized(GetParam(), N, K, rng, &wdq);
  if (!PackedQuantMatrix::supports(w)) GTEST_SKIP() << "no AVX-512 VNNI in this build";
  LinearWeight lw(w);
  lw.packed = std::make_shared<const PackedQuantMatrix>(w);
  lw.activations = DecodeActivations::int8;
  std::vector<float> bias(static_cast<size_t>(N), 0.5f);
  // Exact activations past their packed limit: the GEMM runs and the result equals linear(Tensor).
  lw.activations = DecodeActivations::fp32;
  int64_t M = kLinearPackedMaxRows + 1;
  std::vector<float> x(size_t(M * K));
  for (auto& v : x) v = rng.normal();
  std::vector<float> a(size_t(M * N)), b(size_t(M * N));
  linear(x.data(), M, K, lw, bias.data(), a.data());
  linear(x.data(), M, K, w, bias.data(), b.data());
  EXPECT_EQ(a, b);
  // int8 activations take the packed copy at any M, kMaxRows rows per call: a 600-row prompt
  // equals its slices run alone.
  lw.activations = DecodeActivations::int8;
  M = 600;
  x.resize(size_t(M * K));
  for (auto& v : x) v = rng.normal();
  a.assign(size_t(M * N), 0.0f);
  b.assign(size_t(M * N), 0.0f);
  linear(x.data(), M, K, lw, bias.data(), a.data());
  for (int64_t r0 = 0; r0 < M; r0 += PackedQuantMatrix::kMaxRows) {
    const int64_t rows = std::min(PackedQuantMatrix::kMaxRows, M - r0);
    lw.packed->gemv_int8(x.data() + r0 * K, rows, b.data() + r0 * N);
  }
  for (int64_t i = 0; i < M * N; ++i) b[size_t(i)] += 0.5f;
  EXPECT_EQ(a, b);
  // 1 row: the packed path, bias added once.
  std::vector<float> c(static_cast<size_t>(N)), d(static_cast<size_t>(N));
  linear(x.data(), 1, K, lw, bias.data(), c.data());
  lw.packed->gemv_int8(x.data(), 1, d.data());
  for (int64_t n = 0; n < N; ++n) EXPECT_FLOAT_EQ(c[size_t(n)], d[size_t(n)] + 0.5f);
}

TEST_P(PackedQ8, ExactActivationsRunUpTo64RowsThroughThePackedCopyRowByRowAlike) {
  // A server's batched decode step: every row's result is the one it gets alone, and within
  // rounding of the stored-layout GEMM.
  Rng rng(6);
  std::vector<float> wdq;
  const int64_t N = 32, K = 64;
  Tensor w = quantized(GetParam(), N, K, rng, &wdq);
  if (!PackedQuantMatrix::supports(w)) GTEST_SKIP() << "no AVX-512 VNNI in this build";
  LinearWeight lw(w);
  lw.packed = std::make_shared<const PackedQuantMatrix>(w);
  lw.activations = DecodeActivations::fp32;
  const int64_t M = kLinearPackedMaxRows;
  std::vector<float> x(size_t(M * K));
  for (auto& v : x) v = rng.normal();
  std::vector<float> batched(static_cast<size_t>(M * N)), gemm(static_cast<size_t>(M * N)), alone(static_cast<size_t>(N));
  linear(x.data(), M, K, lw, nullptr, batched.data());
  linear(x.data(), M, K, w, nullptr, gemm.data());
  for (int64_t m = 0; m < M; ++m) {
    linear(x.data() + m * K, 1, K, lw, nullptr, alone.data());
    for (int64_t n = 0; n < N; ++n) {
      EXPECT_EQ(batched[size_t(m * N + n)], alone[size_t(n)]) << m << "," << n;
      EXPECT_NEAR(batched[size_t(m * N + n)], gemm[size_t(m * N + n)], 1e-4f);
    }
  }
}

TEST_P(PackedQ8, Int8ActivationsGiveEachRowOfABatchItsResultAlone) {
  // The int8 path serves batched decode too: a row's result must not depend on its neighbours.
  Rng rng(8);
  std::vector<float> wdq;
  const int64_t N = 48, K = 64;
  Tensor w = quantized(GetParam(), N, K, rng, &wdq);
  if (!PackedQuantMatrix::supports(w)) GTEST_SKIP() << "no AVX-512 VNNI in this build";
  LinearWeight lw(w);
  lw.packed = std::make_shared<const PackedQuantMatrix>(w);
  lw.activations = DecodeActivations::int8;
  const int64_t M = 40;  // decode batch / prompt chunk sizes, not a multiple of 8
  std::vector<float> x(size_t(M * K));
  for (auto& v : x) v = rng.normal();
  std::vector<float> batched(static_cast<size_t>(M * N)), alone(static_cast<size_t>(N));
  linear(x.data(), M, K, lw, nullptr, batched.data());
  for (int64_t m = 0; m < M; ++m) {
    linear(x.data() + m * K, 1, K, lw, nullptr, alone.data());
    for (int64_t n = 0; n < N; ++n) EXPECT_EQ(batched[size_t(m * N + n)], alone[size_t(n)]) << m << "," << n;
  }
}

TEST_P(PackedQ8, PackedOnDemandEqualsPackedAtLoadAndIsMadeOnlyWhenUsed) {
  Rng rng(9);
  std::vector<float> wdq;
  const int64_t N = 48, K = 64;
  Tensor w = quantized(GetParam(), N, K, rng, &wdq);
  if (!PackedQuantMatrix::supports(w)) GTEST_SKIP() << "no AVX-512 VNNI in this build";
  LinearWeight eager(w), lazy(w), unused(w);
  eager.packed = std::make_shared<const PackedQuantMatrix>(w);
  lazy.packed_on_demand = std::make_shared<PackedOnDemand>();
  unused.packed_on_demand = std::make_shared<PackedOnDemand>();
  EXPECT_EQ(lazy.packed_on_demand->bytes(), 0u);
  // A prompt chunk beyond the packed limit runs on the stored layout: still nothing packed.
  const int64_t big = kLinearPackedMaxRows + 1;
  std::vector<float> x(size_t(big * K)), a(size_t(big * N)), b(size_t(big * N));
  for (auto& v : x) v = rng.normal();
  linear(x.data(), big, K, lazy, nullptr, a.data());
  EXPECT_EQ(lazy.packed_on_demand->bytes(), 0u);
  // Decode rows: packed now, with the eager copy's results bit for bit, from several threads at
  // once (a server step may be the first user).
  for (int64_t M : {int64_t(1), int64_t(3)}) {
    linear(x.data(), M, K, eager, nullptr, b.data());
    std::vector<std::vector<float>> got(4, std::vector<float>(size_t(M * N)));
#pragma omp parallel for num_threads(4)
    for (int t = 0; t < 4; ++t) linear(x.data(), M, K, lazy, nullptr, got[size_t(t)].data());
    for (const auto& g : got) EXPECT_TRUE(std::equal(g.begin(), g.end(), b.begin())) << "M=" << M;
  }
  EXPECT_EQ(lazy.packed_on_demand->bytes(), eager.packed->bytes());
  EXPECT_EQ(unused.packed_on_demand->bytes(), 0u);
}

TEST_P(PackedQ8, PackedCopiesStayUnderTheirBudgetDroppingTheLeastRecentlyUsed) {
  // Three experts' matrices under a budget that holds two copies: routing to a third drops the
  // least recently used one; routing back to it packs it again, with the same results bit for
  // bit; a copy a caller still holds outlives its drop.
  Rng rng(13);
  std::vector<float> unused;
  const int64_t N = 64, K = 128;
  std::vector<Tensor> w;
  for (int e = 0; e < 3; ++e) w.push_back(quantized(GetParam(), N, K, rng, &unused));
  if (!PackedQuantMatrix::supports(w[0])) GTEST_SKIP() << "no AVX-512 VNNI in this build";
  const size_t one = PackedQuantMatrix(w[0]).bytes();
  auto copies = std::make_shared<PackedCopies>(2 * one + one / 2);
  std::vector<LinearWeight> experts, eager;
  for (const Tensor& t : w) {
    experts.emplace_back(t);
    experts.back().packed_on_demand = std::make_shared<PackedOnDemand>(copies);
    eager.emplace_back(t);
    eager.back().packed = std::make_shared<const PackedQuantMatrix>(t);
  }
  std::vector<float> x(size_t(2 * K)), got(size_t(2 * N)), want(size_t(2 * N));
  for (auto& v : x) v = rng.normal();
  auto route = [&](int e) {
    linear(x.data(), 2, K, experts[size_t(e)], nullptr, got.data());
    linear(x.data(), 2, K, eager[size_t(e)], nullptr, want.data());
    EXPECT_EQ(got, want) << "expert " << e;
  };
  route(0);
  route(1);
  EXPECT_EQ(copies->resident_bytes(), 2 * one);
  std::shared_ptr<const PackedQuantMatrix> held = experts[1].packed_on_demand->get(w[1]);  // a use too
  route(0);  // 0 is now the most recent: 1 goes first
  route(2);
  EXPECT_EQ(experts[1].packed_on_demand->bytes(), 0u);
  EXPECT_EQ(experts[0].packed_on_demand->bytes(), one);
  EXPECT_EQ(experts[2].packed_on_demand->bytes(), one);
  EXPECT_EQ(copies->resident_bytes(), 2 * one);
  EXPECT_EQ(copies->copies_dropped(), 1);
  std::vector<float> from_held(size_t(2 * N));
  held->gemv_f32(x.data(), 2, from_held.data());  // dropped from the budget, alive for its holder
  linear(x.data(), 2, K, eager[1], nullptr, want.data());
  EXPECT_EQ(from_held, want);
  route(1);  // packed again; 0 is the least recent now
  EXPECT_EQ(experts[0].packed_on_demand->bytes(), 0u);
  EXPECT_EQ(copies->copies_made(), 4);
  EXPECT_EQ(copies->copies_dropped(), 2);
  EXPECT_LE(copies->resident_bytes(), copies->budget_bytes());
  // A budget smaller than one copy still keeps the copy in use.
  auto tiny = std::make_shared<PackedCopies>(1);
  LinearWeight alone(w[0]);
  alone.packed_on_demand = std::make_shared<PackedOnDemand>(tiny);
  linear(x.data(), 2, K, alone, nullptr, got.data());
  linear(x.data(), 2, K, eager[0], nullptr, want.data());
  EXPECT_EQ(got, want);
  EXPECT_EQ(tiny->resident_bytes(), one);
}

TEST_P(PackedQ8, LinearManyEqualsOneLinearPerJobBitForBit) {
  // A layer's q/k/v (one shared input, biases, one matrix big enough to split across threads),
  // a job on another input, a job too tall for the packed path and a plain fp32 weight: one
  // linear_many call must give each job exactly what linear() gives it, for both activation kinds.
  Rng rng(21);
  std::vector<float> unused;
  const int64_t K = 128;
  Tensor wq = quantized(GetParam(), 1040, K, rng, &unused), wk = quantized(GetParam(), 48, K, rng, &unused);
  if (!PackedQuantMatrix::supports(wq)) GTEST_SKIP() << "no AVX-512 VNNI in this build";
  Tensor wf = Tensor::empty(DType::F32, {40, K});
  for (int64_t i = 0; i < wf.numel(); ++i) wf.data<float>()[i] = rng.normal();
  for (DecodeActivations kind : {DecodeActivations::fp32, DecodeActivations::int8}) {
    LinearWeight q(wq), k(wk), f(wf);
    q.packed = std::make_shared<const PackedQuantMatrix>(wq);
    k.packed_on_demand = std::make_shared<PackedOnDemand>();
    q.activations = k.activations = kind;
    const int64_t M = 3, tall = 600;  // past the fp32 packed limit; int8 slices it
    std::vector<float> x(size_t(tall * K)), x2(size_t(M * K)), bias(1040);
    for (auto& v : x) v = rng.normal();
    for (auto& v : x2) v = rng.normal();
    for (auto& v : bias) v = rng.normal();
    struct Out {
      std::vector<float> many, one;
    };
    std::vector<Out> outs(5);
    const std::vector<std::tuple<const float*, int64_t, const LinearWeight*, const float*, int64_t>> spec = {
        {x.data(), M, &q, bias.data(), 1040}, {x.data(), M, &k, nullptr, 48}, {x2.data(), M, &q, nullptr, 1040},
        {x.data(), tall, &k, bias.data(), 48}, {x.data(), M, &f, nullptr, 40}};
    std::vector<LinearJob> jobs;
    for (size_t i = 0; i < spec.size(); ++i) {
      const auto& [in, rows, w, b, n] = spec[i];
      outs[i].many.assign(size_t(rows * n), -1.0f);
      outs[i].one.assign(size_t(rows * n), -2.0f);
      jobs.push_back({in, rows, K, w, b, outs[i].many.data()});
      linear(in, rows, K, *w, b, outs[i].one.data());
    }
    linear_many(jobs);
    for (size_t i = 0; i < spec.size(); ++i)
      EXPECT_TRUE(outs[i].many == outs[i].one) << "job " << i << (kind == DecodeActivations::int8 ? " int8" : " fp32");
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, PackedQ8, ::testing::Values(DType::Q4_0, DType::Q4_1, DType::Q8_0),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(PackedQuantMatrix, RefusesWhatItCannotPack) {
  Tensor f32 = Tensor::empty(DType::F32, {16, 64});
  EXPECT_FALSE(PackedQuantMatrix::supports(f32));
  EXPECT_THROW(PackedQuantMatrix{f32}, Error);
  Tensor q6 = Tensor::empty(DType::Q6_K, {16, 256});
  EXPECT_FALSE(PackedQuantMatrix::supports(q6));
  Tensor q8 = Tensor::empty(DType::Q8_0, {16, 64});
  std::memset(q8.raw(), 0, q8.nbytes());
  if (!PackedQuantMatrix::supports(q8)) GTEST_SKIP() << "no AVX-512 VNNI in this build";
  PackedQuantMatrix p(q8);
  const int64_t too_many = PackedQuantMatrix::kMaxRows + 1;
  std::vector<float> x(size_t(too_many * 64), 1.0f), y(size_t(too_many * 16));
  EXPECT_THROW(p.gemv_int8(x.data(), too_many, y.data()), Error);
  EXPECT_THROW(p.gemv_f32(x.data(), too_many, y.data()), Error);
  EXPECT_THROW(p.gemv_int8(x.data(), 0, y.data()), Error);
  p.gemv_int8(x.data(), 1, y.data());
  for (int i = 0; i < 16; ++i) EXPECT_EQ(y[size_t(i)], 0.0f);
}

}  // namespace

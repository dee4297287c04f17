// The K-quant encoders (Q4_K, Q5_K, Q6_K through quantize_row): quantize -> dequantize error
// on Gaussian data is ordered Q6_K < Q5_K < Q4_K and below what plain min/max rounding of the
// same sub-blocks gives (with unquantized scales, which favours the plain rounding); awkward
// blocks (zeros, constants, outliers, negative-only, tiny values) come back finite and close;
// the encoding is deterministic and the same in one call as block by block.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/cpu/quant.h"

using namespace mf;

namespace {

constexpr int64_t kQK = 256;

std::vector<float> gaussian(int64_t n, uint32_t seed, float sd = 1.0f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(g);
  return v;
}

std::vector<float> round_trip(DType t, const std::vector<float>& x) {
  std::vector<uint8_t> q(dtype_bytes(t, int64_t(x.size())));
  quantize_row(t, x.data(), q.data(), int64_t(x.size()));
  std::vector<float> y(x.size());
  dequantize_row(t, q.data(), y.data(), int64_t(x.size()));
  return y;
}

double rms(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i] - b[i]) * double(a[i] - b[i]);
  return std::sqrt(s / double(a.size()));
}

// Plain min/max rounding: sub-blocks of `sub` values, levels 0..nmax over [min(x,0), max(x)]
// (Q4_K/Q5_K), or signed levels -nmax..nmax with step max|x| / nmax (symmetric, Q6_K-like).
// Scales are kept in float: the baseline gets no scale-quantization error at all.
double plain_rounding_rms(const std::vector<float>& x, int sub, int nmax, bool affine) {
  double s = 0;
  for (size_t b = 0; b < x.size(); b += size_t(sub)) {
    const auto first = x.begin() + long(b), last = first + sub;
    const float lo = std::min(0.0f, *std::min_element(first, last)), hi = *std::max_element(first, last);
    float amax = 0;
    for (auto it = first; it != last; ++it) amax = std::max(amax, std::fabs(*it));
    for (auto it = first; it != last; ++it) {
      float y;
      if (affine) {
        const float step = (hi - lo) / float(nmax);
        y = step > 0 ? lo + step * std::round((*it - lo) / step) : lo;
      } else {
        const float step = amax / float(nmax);
        y = step > 0 ? step * std::round(*it / step) : 0.0f;
      }
      s += double(y - *it) * double(y - *it);
    }
  }
  return std::sqrt(s / double(x.size()));
}

void expect_all_finite(const std::vector<float>& y, DType t) {
  for (size_t i = 0; i < y.size(); ++i)
    ASSERT_TRUE(std::isfinite(y[i])) << dtype_name(t) << " element " << i << " = " << y[i];
}

const DType kTypes[] = {DType::Q4_K, DType::Q5_K, DType::Q6_K};

}  // namespace

TEST(QuantK, QuantizeRowAcceptsTheKQuants) {
  for (DType t : kTypes) EXPECT_TRUE(can_quantize(t)) << dtype_name(t);
  EXPECT_FALSE(can_quantize(DType::Q2_K));
  std::vector<float> x(100, 1.0f);
  std::vector<uint8_t> q(4096);
  EXPECT_THROW(quantize_row(DType::Q4_K, x.data(), q.data(), 100), Error) << "not a whole super-block";
}

TEST(QuantK, ErrorOrderedByBitsAndBelowPlainRounding) {
  const std::vector<float> x = gaussian(kQK * 256, 7);
  const double e4 = rms(x, round_trip(DType::Q4_K, x));
  const double e5 = rms(x, round_trip(DType::Q5_K, x));
  const double e6 = rms(x, round_trip(DType::Q6_K, x));
  const double plain4 = plain_rounding_rms(x, 32, 15, true);
  const double plain5 = plain_rounding_rms(x, 32, 31, true);
  const double plain6 = plain_rounding_rms(x, 16, 31, false);
  RecordProperty("rms_q4_k", std::to_string(e4));
  RecordProperty("rms_q5_k", std::to_string(e5));
  RecordProperty("rms_q6_k", std::to_string(e6));
  std::printf("unit-variance Gaussian RMS error: Q4_K %.5f (plain rounding %.5f), Q5_K %.5f (%.5f), "
              "Q6_K %.5f (%.5f)\n", e4, plain4, e5, plain5, e6, plain6);
  EXPECT_LT(e6, e5);
  EXPECT_LT(e5, e4);
  EXPECT_LT(e4, 0.95 * plain4);
  EXPECT_LT(e5, 0.95 * plain5);
  EXPECT_LT(e6, 0.95 * plain6);
  // Absolute bounds (unit variance; measured 0.0709 / 0.0349 / 0.0178): a broken search or
  // packing shows up here even if the order holds.
  EXPECT_LT(e4, 0.075);
  EXPECT_LT(e5, 0.037);
  EXPECT_LT(e6, 0.019);
}

TEST(QuantK, ScaleInvariant) {
  // Weights of a real model are ~1e-2; the fp16 super-block scales must not lose them.
  const std::vector<float> x = gaussian(kQK * 32, 8, 0.02f);
  for (DType t : kTypes) {
    const double e = rms(x, round_trip(t, x)) / 0.02;
    EXPECT_LT(e, t == DType::Q4_K ? 0.075 : t == DType::Q5_K ? 0.037 : 0.019) << dtype_name(t);
  }
}

TEST(QuantK, AwkwardBlocks) {
  for (DType t : kTypes) {
    SCOPED_TRACE(dtype_name(t));
    // All zeros decode to exact zeros.
    const std::vector<float> zeros(kQK * 2, 0.0f);
    const std::vector<float> z = round_trip(t, zeros);
    expect_all_finite(z, t);
    EXPECT_EQ(rms(zeros, z), 0.0);

    // A constant block: within the fp16 precision of the stored scale/offset.
    for (float c : {0.75f, -0.75f}) {
      const std::vector<float> con(kQK, c);
      const std::vector<float> y = round_trip(t, con);
      expect_all_finite(y, t);
      EXPECT_LT(rms(con, y), 2e-3) << "constant " << c;
    }

    // One huge outlier (1e4 x the spread) survives to a few percent. The 6/8-bit sub-block
    // scales are relative to its super-block's largest, so the other sub-blocks of that
    // super-block may lose their detail, but never come back worse than zeros would.
    std::vector<float> out = gaussian(kQK, 9, 0.01f);
    out[37] = 100.0f;
    const std::vector<float> y = round_trip(t, out);
    expect_all_finite(y, t);
    EXPECT_NEAR(y[37], 100.0f, 3.0f);
    const std::vector<float> far(out.begin() + 128, out.end()), far_y(y.begin() + 128, y.end());
    EXPECT_LE(rms(far, far_y), 1.001 * rms(far, std::vector<float>(far.size(), 0.0f)));
    // A moderate outlier (30 x the spread) leaves the other sub-blocks their resolution
    // (measured 8.8e-4 / 4.0e-4 / 2.1e-4).
    out[37] = 0.3f;
    const std::vector<float> ym = round_trip(t, out);
    const std::vector<float> far_m(ym.begin() + 128, ym.end());
    EXPECT_NEAR(ym[37], 0.3f, 0.005f);
    EXPECT_LT(rms(far, far_m), t == DType::Q4_K ? 1e-3 : t == DType::Q5_K ? 5e-4 : 3e-4);

    // Negative-only data (the offset carries the block) and tiny values.
    std::vector<float> neg = gaussian(kQK * 4, 10);
    for (float& v : neg) v = -1.0f - std::fabs(v);
    const std::vector<float> yn = round_trip(t, neg);
    expect_all_finite(yn, t);
    EXPECT_LT(rms(neg, yn), t == DType::Q4_K ? 0.1 : t == DType::Q5_K ? 0.05 : 0.03);
    // Values below fp16's reach for the scales: they may vanish, but not grow.
    const std::vector<float> tiny = gaussian(kQK, 11, 1e-6f);
    const std::vector<float> yt = round_trip(t, tiny);
    expect_all_finite(yt, t);
    EXPECT_LE(rms(tiny, yt), 1.01 * rms(tiny, std::vector<float>(tiny.size(), 0.0f)));
  }
}

TEST(QuantK, DeterministicAndIndependentOfChunking) {
  const std::vector<float> x = gaussian(kQK * 200, 12);  // more blocks than one parallel chunk
  for (DType t : kTypes) {
    std::vector<uint8_t> whole(dtype_bytes(t, int64_t(x.size()))), again(whole.size()), pieces(whole.size());
    quantize_row(t, x.data(), whole.data(), int64_t(x.size()));
    quantize_row(t, x.data(), again.data(), int64_t(x.size()));
    const size_t block_bytes = dtype_bytes(t, kQK);
    for (size_t b = 0; b < x.size() / kQK; ++b)
      quantize_row(t, x.data() + b * kQK, pieces.data() + b * block_bytes, kQK);
    EXPECT_EQ(whole, again) << dtype_name(t);
    EXPECT_EQ(whole, pieces) << dtype_name(t);
  }
}

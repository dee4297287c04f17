#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

#include "core/error.h"
#include "infer/sampling.h"

namespace {

using mf::Sampler;
using mf::SamplingParams;

SamplingParams params(float t, int k = 0, float p = 1.0f, float min_p = 0.0f, uint64_t seed = 7) {
  SamplingParams s;
  s.temperature = t;
  s.top_k = k;
  s.top_p = p;
  s.min_p = min_p;
  s.seed = seed;
  return s;
}

TEST(Sampling, GreedyPicksArgmaxFirstOnTies) {
  Sampler s(params(0));
  std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f};
  EXPECT_EQ(s.sample(logits, {}), 1);
  auto d = s.distribution(logits, {});
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].first, 1);
  EXPECT_DOUBLE_EQ(d[0].second, 1.0);
}

TEST(Sampling, RepetitionPenaltyHfSemantics) {
  std::vector<float> logits = {2.0f, -2.0f, 1.0f, 4.0f};
  std::vector<int32_t> seen = {0, 1, 0, 99, -3};  // duplicates penalised once, bad ids ignored
  mf::apply_repetition_penalty(logits, seen, 2.0f);
  EXPECT_FLOAT_EQ(logits[0], 1.0f);
  EXPECT_FLOAT_EQ(logits[1], -4.0f);
  EXPECT_FLOAT_EQ(logits[2], 1.0f);
  EXPECT_FLOAT_EQ(logits[3], 4.0f);
}

TEST(Sampling, RepetitionPenaltyChangesGreedyChoice) {
  SamplingParams p = params(0);
  p.repeat_penalty = 3.0f;
  Sampler s(p);
  std::vector<float> logits = {3.0f, 2.0f};
  std::vector<int32_t> hist = {0};
  EXPECT_EQ(s.sample(logits, hist), 1);  // 3/3 = 1 < 2
  p.repeat_last_n = 1;
  Sampler windowed(p);
  std::vector<int32_t> old = {0, 1};  // only the last token (1) is penalised
  EXPECT_EQ(windowed.sample(logits, old), 0);
}

TEST(Sampling, TemperatureSoftmaxExact) {
  Sampler s(params(2.0f));
  std::vector<float> logits = {0.0f, 2.0f * std::log(3.0f)};  // /T -> probs 1/4, 3/4
  auto d = s.distribution(logits, {});
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].first, 1);
  EXPECT_NEAR(d[0].second, 0.75, 1e-6);
  EXPECT_NEAR(d[1].second, 0.25, 1e-6);
}

TEST(Sampling, TopKKeepsKBest) {
  Sampler s(params(1.0f, 2));
  std::vector<float> logits = {1.0f, 3.0f, 2.0f, 0.0f};
  auto d = s.distribution(logits, {});
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].first, 1);
  EXPECT_EQ(d[1].first, 2);
  EXPECT_NEAR(d[0].second, 1.0 / (1.0 + std::exp(-1.0)), 1e-9);
}

TEST(Sampling, TopPSmallestPrefixReachingMass) {
  // probs 0.5, 0.3, 0.15, 0.05
  std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  EXPECT_EQ(Sampler(params(1.0f, 0, 0.79f)).distribution(logits, {}).size(), 2u);
  EXPECT_EQ(Sampler(params(1.0f, 0, 0.81f)).distribution(logits, {}).size(), 3u);
  EXPECT_EQ(Sampler(params(1.0f, 0, 0.4f)).distribution(logits, {}).size(), 1u);
  auto d = Sampler(params(1.0f, 0, 0.9f)).distribution(logits, {});
  ASSERT_EQ(d.size(), 3u);
  EXPECT_NEAR(d[2].second, 0.15 / 0.95, 1e-6);
}

TEST(Sampling, MinPRelativeToBest) {
  std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  auto d = Sampler(params(1.0f, 0, 1.0f, 0.29f)).distribution(logits, {});  // floor 0.145
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[2].first, 2);
  EXPECT_EQ(Sampler(params(1.0f, 0, 1.0f, 0.61f)).distribution(logits, {}).size(), 1u);
}

TEST(Sampling, DrawsFollowTheDistribution) {
  Sampler s(params(1.0f, 3, 1.0f, 0.0f, 1234));
  std::vector<float> logits = {std::log(0.2f), std::log(0.5f), std::log(0.3f), -5.0f, -6.0f};
  std::map<int32_t, int> counts;
  const int n = 20000;
  for (int i = 0; i < n; ++i) counts[s.sample(logits, {})]++;
  EXPECT_EQ(counts.count(3), 0u);
  EXPECT_EQ(counts.count(4), 0u);
  // top-3 renormalised: 0.2/1.0, 0.5, 0.3 (the tail is excluded by top-k)
  EXPECT_NEAR(counts[0] / double(n), 0.2, 0.015);
  EXPECT_NEAR(counts[1] / double(n), 0.5, 0.015);
  EXPECT_NEAR(counts[2] / double(n), 0.3, 0.015);
}

TEST(Sampling, SeedDeterminism) {
  std::vector<float> logits(50);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = std::sin(float(i));
  auto run = [&](uint64_t seed) {
    Sampler s(params(1.0f, 0, 1.0f, 0.0f, seed));
    std::vector<int32_t> out;
    for (int i = 0; i < 64; ++i) out.push_back(s.sample(logits, {}));
    return out;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
}

TEST(Sampling, MaskedLogitsNeverDrawn) {
  Sampler s(params(1.0f, 0, 1.0f, 0.0f, 5));
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> logits = {-inf, 0.0f, -inf, 0.0f};
  for (int i = 0; i < 200; ++i) {
    int32_t t = s.sample(logits, {});
    EXPECT_TRUE(t == 1 || t == 3);
  }
}

TEST(Sampling, InvalidParamsAreErrors) {
  EXPECT_THROW(Sampler(params(-1.0f)), mf::Error);
  EXPECT_THROW(Sampler(params(1.0f, -2)), mf::Error);
  EXPECT_THROW(Sampler(params(1.0f, 0, 0.0f)), mf::Error);
  EXPECT_THROW(Sampler(params(1.0f, 0, 1.5f)), mf::Error);
  SamplingParams p = params(1.0f);
  p.repeat_penalty = 0;
  EXPECT_THROW(Sampler{p}, mf::Error);
  Sampler ok(params(1.0f));
  EXPECT_THROW(ok.sample(std::vector<float>{}, {}), mf::Error);
}

}  // namespace

TEST(Sampling, UnfilteredFastDrawEqualsTheFullDistributionDraw) {
  // With no top-k, top-p or min-p, sample() skips the full-vocabulary sort; its draws must be the
  // ones distribution() + the same uniform numbers give, token for token.
  mf::Rng logits_rng(3);
  std::vector<float> logits(5000);
  for (float& v : logits) v = float(logits_rng.normal() * 3.0);
  logits[17] = -INFINITY;  // masked
  for (float t : {0.3f, 1.0f, 1.7f}) {
    mf::SamplingParams p;
    p.temperature = t;
    p.repeat_penalty = 1.3f;
    p.seed = 11;
    mf::Sampler fast(p);
    const std::vector<int32_t> history = {1, 2, 3, 500};
    const auto dist = fast.distribution(logits, history);
    mf::Rng reference(11);
    for (int i = 0; i < 2000; ++i) {
      const double u = reference.uniform_double();
      double cum = 0;
      int32_t want = dist.back().first;
      for (const auto& [id, prob] : dist) {
        cum += prob;
        if (u < cum) {
          want = id;
          break;
        }
      }
      ASSERT_EQ(fast.sample(logits, history), want) << "temperature " << t << ", draw " << i;
    }
  }
}

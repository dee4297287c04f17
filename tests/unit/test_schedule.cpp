#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "train/schedule.h"

TEST(WarmupCosine, WarmsUpLinearlyThenDecaysToTheFloor) {
  const mf::WarmupCosine s{4, 14, 0.1f};
  EXPECT_FLOAT_EQ(s.multiplier(0), 0.25f);  // the first update already moves
  EXPECT_FLOAT_EQ(s.multiplier(3), 1.0f);
  EXPECT_FLOAT_EQ(s.multiplier(4), 1.0f);   // decay starts at the top
  EXPECT_NEAR(s.multiplier(9), 0.1 + 0.9 * 0.5 * (1 + std::cos(std::numbers::pi * 0.5)), 1e-6);
  EXPECT_FLOAT_EQ(s.multiplier(14), 0.1f);
  EXPECT_FLOAT_EQ(s.multiplier(1000), 0.1f);  // past the end: the floor, never negative
  for (int64_t i = 5; i < 14; ++i) EXPECT_LT(s.multiplier(i), s.multiplier(i - 1));
}

TEST(WarmupCosine, NoWarmup) {
  const mf::WarmupCosine s{0, 10, 0.0f};
  EXPECT_FLOAT_EQ(s.multiplier(0), 1.0f);
  EXPECT_NEAR(s.multiplier(5), 0.5f, 1e-6);
  EXPECT_NEAR(s.multiplier(10), 0.0f, 1e-7);
}

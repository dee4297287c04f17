// Shared pieces of the CUDA tests: skip without a device, random host data, bf16-aware
// comparison of a GPU result with the CPU kernel's result.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "kernels/cuda/device.h"

namespace mf::cuda::testing {

// Every CUDA test fixture derives from this: no device, the test is skipped (not failed).
class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
  }
};

inline std::vector<float> random_normal(size_t n, uint64_t seed, float scale = 1.0f) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = float(rng.normal()) * scale;
  return v;
}

// Rounds every value to bf16 and back, so a CPU reference sees exactly the inputs the GPU sees.
inline std::vector<float> round_to_bf16(std::vector<float> v) {
  for (auto& x : v) x = float_from_bf16_bits(bf16_bits_from_float(x));
  return v;
}

// max |a - b| / max |b|: one number that scales with the data.
inline double max_rel_err(const std::vector<float>& got, const std::vector<float>& want) {
  double err = 0, scale = 1e-30;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i]) && std::isfinite(want[i])) return INFINITY;  // std::max would drop a NaN
    err = std::max(err, double(std::fabs(got[i] - want[i])));
    scale = std::max(scale, double(std::fabs(want[i])));
  }
  return err / scale;
}

// Tolerances: an op computed in fp32 from bf16 inputs and written as bf16 is off by about one
// bf16 rounding (2^-8 relative) of its largest output; fp32 outputs of fp32 math by ~1e-5.
constexpr double kBf16Tol = 1.0 / 64;
constexpr double kF32Tol = 1e-4;

}  // namespace mf::cuda::testing

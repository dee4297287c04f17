// CUDA kernels against the CPU kernels (which are themselves checked against PyTorch).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "kernels/cpu/activation.h"
#include "kernels/cpu/norm.h"
#include "kernels/cuda/activation.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/norm.h"

namespace {

class CudaKernels : public ::testing::Test {
 protected:
  void SetUp() override {
    if (mf::cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
  }
};

std::vector<float> random_vector(size_t n, uint64_t seed) {
  mf::Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = rng.normal();
  return v;
}

float max_rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  float err = 0, scale = 1e-12f;
  for (size_t i = 0; i < a.size(); ++i) {
    err = std::fmax(err, std::fabs(a[i] - b[i]));
    scale = std::fmax(scale, std::fabs(b[i]));
  }
  return err / scale;
}

TEST_F(CudaKernels, RmsnormMatchesCpu) {
  const int64_t rows = 37, dim = 576;
  auto x = random_vector(rows * dim, 1), w = random_vector(dim, 2);
  std::vector<float> cpu(x.size()), gpu(x.size());
  mf::rmsnorm(x.data(), w.data(), rows, dim, 1e-5f, cpu.data());
  mf::cuda::DeviceBuffer dx(x.size() * 4), dw(w.size() * 4), dy(x.size() * 4);
  dx.upload(x.data(), x.size() * 4);
  dw.upload(w.data(), w.size() * 4);
  mf::cuda::rmsnorm(dx.as<float>(), dw.as<float>(), rows, dim, 1e-5f, dy.as<float>());
  dy.download(gpu.data(), gpu.size() * 4);
  EXPECT_LT(max_rel_err(gpu, cpu), 1e-5f);
}

TEST_F(CudaKernels, SiluMulMatchesCpu) {
  const int64_t n = 100003;
  auto g = random_vector(n, 3), u = random_vector(n, 4);
  std::vector<float> cpu(n), gpu(n);
  mf::silu_mul(g.data(), u.data(), cpu.data(), n);
  mf::cuda::DeviceBuffer dg(n * 4), du(n * 4), dy(n * 4);
  dg.upload(g.data(), n * 4);
  du.upload(u.data(), n * 4);
  mf::cuda::silu_mul(dg.as<float>(), du.as<float>(), dy.as<float>(), n);
  dy.download(gpu.data(), n * 4);
  EXPECT_LT(max_rel_err(gpu, cpu), 1e-5f);
}

TEST(CudaDevice, CountNeverThrows) { EXPECT_GE(mf::cuda::device_count(), 0); }

}  // namespace

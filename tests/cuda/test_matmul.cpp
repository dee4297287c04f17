// cuBLAS GEMMs (single and grouped over experts) against a float64 host product of the same
// bf16-rounded inputs.
#include <gtest/gtest.h>

#include <vector>

#include "cuda_test_util.h"
#include "kernels/cuda/matmul.h"

namespace {

using namespace mf::cuda;
using namespace mf::cuda::testing;

// y[M,N] = x[M,K] w[N,K]^T in float64.
std::vector<float> host_linear(const std::vector<float>& x, const std::vector<float>& w, int64_t m, int64_t n,
                               int64_t k) {
  std::vector<float> y(size_t(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t t = 0; t < k; ++t) s += double(x[i * k + t]) * w[j * k + t];
      y[i * n + j] = float(s);
    }
  return y;
}

class CudaMatmul : public CudaTest {};

TEST_F(CudaMatmul, LinearForwardAndBackwardMatchHost) {
  const int64_t m = 37, n = 96, k = 80;
  auto x = round_to_bf16(random_normal(m * k, 1)), w = round_to_bf16(random_normal(n * k, 2));
  auto dy = round_to_bf16(random_normal(m * n, 3));
  Stream stream;
  Blas blas(stream.get());
  auto dx_dev = upload_bf16(x), dw_dev = upload_bf16(w), ddy = upload_bf16(dy);
  DeviceBuffer y32(m * n * 4), y16(m * n * 2), dx32(m * k * 4), dw32(n * k * 4);
  dw32.zero();
  linear_forward(blas, dx_dev.as<bf16>(), dw_dev.as<bf16>(), y32.get(), OutType::f32, m, n, k);
  linear_forward(blas, dx_dev.as<bf16>(), dw_dev.as<bf16>(), y16.get(), OutType::bf16, m, n, k);
  linear_backward_input(blas, ddy.as<bf16>(), dw_dev.as<bf16>(), dx32.get(), OutType::f32, m, n, k);
  linear_backward_weight(blas, ddy.as<bf16>(), dx_dev.as<bf16>(), dw32.as<float>(), m, n, k);
  linear_backward_weight(blas, ddy.as<bf16>(), dx_dev.as<bf16>(), dw32.as<float>(), m, n, k);  // accumulates
  stream.synchronize();

  auto want_y = host_linear(x, w, m, n, k);
  EXPECT_LT(max_rel_err(download_f32(y32.as<float>(), m * n), want_y), kF32Tol);
  EXPECT_LT(max_rel_err(download_bf16(y16.as<bf16>(), m * n), want_y), kBf16Tol);

  // dx = dy w: host_linear with w transposed to [K, N].
  std::vector<float> wt(size_t(k * n));
  for (int64_t j = 0; j < n; ++j)
    for (int64_t t = 0; t < k; ++t) wt[t * n + j] = w[j * k + t];
  EXPECT_LT(max_rel_err(download_f32(dx32.as<float>(), m * k), host_linear(dy, wt, m, k, n)), kF32Tol);

  // dW = 2 * dy^T x (two accumulating calls).
  std::vector<float> dyt(size_t(n * m)), xt(size_t(k * m));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) dyt[j * m + i] = dy[i * n + j];
    for (int64_t t = 0; t < k; ++t) xt[t * m + i] = x[i * k + t];
  }
  auto want_dw = host_linear(dyt, xt, n, k, m);
  for (auto& v : want_dw) v *= 2;
  EXPECT_LT(max_rel_err(download_f32(dw32.as<float>(), n * k), want_dw), kF32Tol);
}

TEST_F(CudaMatmul, ResidualAccumulationWithBetaOne) {
  const int64_t m = 5, n = 64, k = 32;
  auto x = round_to_bf16(random_normal(m * k, 4)), w = round_to_bf16(random_normal(n * k, 5));
  auto residual = random_normal(m * n, 6);
  Stream stream;
  Blas blas(stream.get());
  auto dx = upload_bf16(x), dw = upload_bf16(w), dr = upload_f32(residual);
  linear_forward(blas, dx.as<bf16>(), dw.as<bf16>(), dr.get(), OutType::f32, m, n, k, 1.0f);
  stream.synchronize();
  auto want = host_linear(x, w, m, n, k);
  for (size_t i = 0; i < want.size(); ++i) want[i] += residual[i];
  EXPECT_LT(max_rel_err(download_f32(dr.as<float>(), m * n), want), kF32Tol);
}

TEST_F(CudaMatmul, GroupedExpertsMatchPerExpertProducts) {
  const int experts = 5;
  const int64_t n = 48, k = 64;
  const std::vector<int32_t> offsets = {0, 7, 7, 30, 31, 44};  // expert 1 has no rows
  const int64_t rows = offsets.back();
  auto x = round_to_bf16(random_normal(rows * k, 7)), dy = round_to_bf16(random_normal(rows * n, 8));
  std::vector<std::vector<float>> w(experts);
  std::vector<DeviceBuffer> dw(experts), dgrad(experts);
  std::vector<const bf16*> wptr(experts);
  std::vector<float*> gptr(experts);
  for (int e = 0; e < experts; ++e) {
    w[e] = round_to_bf16(random_normal(n * k, 10 + e));
    dw[e] = upload_bf16(w[e]);
    wptr[e] = dw[e].as<bf16>();
    dgrad[e] = DeviceBuffer(n * k * 4);
    dgrad[e].zero();
    gptr[e] = dgrad[e].as<float>();
  }
  Stream stream;
  Blas blas(stream.get());
  auto dx_dev = upload_bf16(x), ddy = upload_bf16(dy);
  DeviceBuffer y(rows * n * 4), y16(rows * n * 2), dxo(rows * k * 4), pointers(grouped_pointer_bytes(experts));
  ExpertGroups groups{offsets, wptr};
  grouped_linear_forward(blas, groups, dx_dev.as<bf16>(), y.get(), OutType::f32, n, k, pointers.get());
  // bf16 outputs (what the model runs) take cublasGemmGroupedBatchedEx; fp32 ones a GEMM per expert.
  grouped_linear_forward(blas, groups, dx_dev.as<bf16>(), y16.get(), OutType::bf16, n, k, pointers.get());
  grouped_linear_backward_input(blas, groups, ddy.as<bf16>(), dxo.get(), OutType::f32, n, k, pointers.get());
  grouped_linear_backward_weight(blas, groups, gptr, ddy.as<bf16>(), dx_dev.as<bf16>(), n, k, pointers.get());
  stream.synchronize();

  auto got_y = download_f32(y.as<float>(), rows * n), got_dx = download_f32(dxo.as<float>(), rows * k);
  const auto got_y16 = download_bf16(y16.as<bf16>(), rows * n);
  for (int e = 0; e < experts; ++e) {
    const int64_t begin = offsets[e], r = offsets[e + 1] - begin;
    std::vector<float> xe(x.begin() + begin * k, x.begin() + (begin + r) * k);
    std::vector<float> dye(dy.begin() + begin * n, dy.begin() + (begin + r) * n);
    auto want = host_linear(xe, w[e], r, n, k);
    std::vector<float> got(got_y.begin() + begin * n, got_y.begin() + (begin + r) * n);
    std::vector<float> got16(got_y16.begin() + begin * n, got_y16.begin() + (begin + r) * n);
    if (r) {
      EXPECT_LT(max_rel_err(got, want), kF32Tol) << "expert " << e;
      EXPECT_LT(max_rel_err(got16, want), kBf16Tol) << "expert " << e;
    }
    std::vector<float> wt(size_t(k * n));
    for (int64_t j = 0; j < n; ++j)
      for (int64_t t = 0; t < k; ++t) wt[t * n + j] = w[e][j * k + t];
    std::vector<float> got_dxe(got_dx.begin() + begin * k, got_dx.begin() + (begin + r) * k);
    if (r) {
      EXPECT_LT(max_rel_err(got_dxe, host_linear(dye, wt, r, k, n)), kF32Tol) << "expert " << e;
    }
    std::vector<float> dyt(size_t(n * r)), xt(size_t(k * r));
    for (int64_t i = 0; i < r; ++i) {
      for (int64_t j = 0; j < n; ++j) dyt[j * r + i] = dye[i * n + j];
      for (int64_t t = 0; t < k; ++t) xt[t * r + i] = xe[i * k + t];
    }
    auto got_dw = download_f32(gptr[e], n * k);
    if (r) {
      EXPECT_LT(max_rel_err(got_dw, host_linear(dyt, xt, n, k, r)), kF32Tol) << "expert " << e;
    } else {
      for (float v : got_dw) ASSERT_EQ(v, 0.0f) << "an expert without rows got a gradient";
    }
  }
}

TEST(CudaDevice, CountNeverThrows) { EXPECT_GE(device_count(), 0); }

TEST(CudaDevice, RequireDeviceExplainsAbsence) {
  if (device_count() > 0) GTEST_SKIP() << "a device is present";
  try {
    require_device();
    FAIL() << "require_device returned without a device";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("--device cpu"), std::string::npos) << e.what();
  }
}

TEST(CudaDevice, Bf16RoundingIsNearestEven) {
  EXPECT_EQ(bf16_bits_from_float(1.0f), 0x3f80);
  EXPECT_EQ(float_from_bf16_bits(bf16_bits_from_float(1.00390625f)), 1.0f);     // tie, even stays
  EXPECT_EQ(float_from_bf16_bits(bf16_bits_from_float(1.01171875f)), 1.015625f);  // tie, rounds up to even
  EXPECT_EQ(float_from_bf16_bits(bf16_bits_from_float(-2.5f)), -2.5f);
}

}  // namespace

// CUDA RMSNorm (bf16 / fp32 output, fused residual add, backward) against the CPU kernel.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "kernels/cpu/activation.h"
#include "kernels/cpu/norm.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/norm.h"

namespace {

using namespace mf::cuda;
using mf::cuda::testing::kBf16Tol;
using mf::cuda::testing::kF32Tol;
using mf::cuda::testing::max_rel_err;
using mf::cuda::testing::random_normal;
using mf::cuda::testing::round_to_bf16;

class CudaNorm : public mf::cuda::testing::CudaTest {};

constexpr float kEps = 1e-5f;

struct Case {
  int64_t rows, dim;
};
// 576: 16-byte path; 1001: scalar path; 16384: the dweight partial rows live in global scratch.
const Case kCases[] = {{1, 576}, {37, 576}, {1, 1001}, {37, 1001}, {5, 16384}};

std::string name(const Case& c) { return "rows=" + std::to_string(c.rows) + " dim=" + std::to_string(c.dim); }

// Uploads go through cudaMemcpy on the legacy default stream, which does not order work queued
// on a non-blocking Stream: wait for them before launching.
void sync_device() { check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

std::vector<float> norm_weight(int64_t dim, uint64_t seed) {
  auto w = random_normal(size_t(dim), seed, 0.2f);
  for (auto& v : w) v += 1.0f;
  return w;
}

std::vector<float> host_rstd(const std::vector<float>& x, int64_t rows, int64_t dim) {
  std::vector<float> r(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) {
    double ss = 0;
    for (int64_t j = 0; j < dim; ++j) ss += double(x[size_t(i * dim + j)]) * x[size_t(i * dim + j)];
    r[size_t(i)] = float(1.0 / std::sqrt(ss / double(dim) + kEps));
  }
  return r;
}

TEST_F(CudaNorm, RmsnormMatchesCpu) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(name(c));
    const size_t n = size_t(c.rows * c.dim);
    const auto x = random_normal(n, 1, 2.0f), w = norm_weight(c.dim, 2);
    std::vector<float> want(n);
    mf::rmsnorm(x.data(), w.data(), c.rows, c.dim, kEps, want.data());
    DeviceBuffer dx = upload_f32(x), dw = upload_f32(w);
    DeviceBuffer y(n * sizeof(bf16)), y32(n * sizeof(float)), rstd(size_t(c.rows) * sizeof(float));
    Stream stream;
    sync_device();
    rmsnorm(dx.as<float>(), dw.as<float>(), c.rows, c.dim, kEps, y.as<bf16>(), rstd.as<float>(), stream.get());
    rmsnorm(dx.as<float>(), dw.as<float>(), c.rows, c.dim, kEps, y32.as<float>(), nullptr, stream.get());
    stream.synchronize();
    EXPECT_LT(max_rel_err(download_bf16(y.as<bf16>(), n), want), kBf16Tol);
    EXPECT_LT(max_rel_err(download_f32(y32.as<float>(), n), want), kF32Tol);
    EXPECT_LT(max_rel_err(download_f32(rstd.as<float>(), size_t(c.rows)), host_rstd(x, c.rows, c.dim)), kF32Tol);
  }
}

// Pointers one element past an aligned base: the 16-byte path must not be taken.
TEST_F(CudaNorm, RmsnormUnalignedPointers) {
  const int64_t rows = 7, dim = 576;
  const size_t n = size_t(rows * dim);
  auto x = random_normal(n + 1, 3), w = norm_weight(dim + 1, 4);
  std::vector<float> want(n);
  mf::rmsnorm(x.data() + 1, w.data() + 1, rows, dim, kEps, want.data());
  DeviceBuffer dx = upload_f32(x), dw = upload_f32(w), y((n + 1) * sizeof(bf16));
  Stream stream;
  sync_device();
  rmsnorm(dx.as<float>() + 1, dw.as<float>() + 1, rows, dim, kEps, y.as<bf16>() + 1, nullptr, stream.get());
  stream.synchronize();
  EXPECT_LT(max_rel_err(download_bf16(y.as<bf16>() + 1, n), want), kBf16Tol);
}

TEST_F(CudaNorm, AddRmsnormMatchesCpu) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(name(c));
    const size_t n = size_t(c.rows * c.dim);
    const auto residual = random_normal(n, 5, 2.0f), delta = round_to_bf16(random_normal(n, 6));
    const auto w = norm_weight(c.dim, 7);
    std::vector<float> summed = residual, want(n);
    mf::add_inplace(summed.data(), delta.data(), int64_t(n));
    mf::rmsnorm(summed.data(), w.data(), c.rows, c.dim, kEps, want.data());
    DeviceBuffer dres = upload_f32(residual), ddelta = upload_bf16(delta), dw = upload_f32(w);
    DeviceBuffer dres32 = upload_f32(residual);
    DeviceBuffer y(n * sizeof(bf16)), y32(n * sizeof(float)), rstd(size_t(c.rows) * sizeof(float));
    Stream stream;
    sync_device();
    add_rmsnorm(dres.as<float>(), ddelta.as<bf16>(), dw.as<float>(), c.rows, c.dim, kEps, y.as<bf16>(),
                rstd.as<float>(), stream.get());
    add_rmsnorm(dres32.as<float>(), ddelta.as<bf16>(), dw.as<float>(), c.rows, c.dim, kEps, y32.as<float>(),
                nullptr, stream.get());
    stream.synchronize();
    // fp32 + (bf16 -> fp32) is one exact-rounded add on both sides.
    EXPECT_EQ(max_rel_err(download_f32(dres.as<float>(), n), summed), 0.0);
    EXPECT_EQ(max_rel_err(download_f32(dres32.as<float>(), n), summed), 0.0);
    EXPECT_LT(max_rel_err(download_bf16(y.as<bf16>(), n), want), kBf16Tol);
    EXPECT_LT(max_rel_err(download_f32(y32.as<float>(), n), want), kF32Tol);
    EXPECT_LT(max_rel_err(download_f32(rstd.as<float>(), size_t(c.rows)), host_rstd(summed, c.rows, c.dim)),
              kF32Tol);
  }
}

// The fp32-output variant may write over its input (the final norm in place).
TEST_F(CudaNorm, RmsnormFp32InPlace) {
  const int64_t rows = 37, dim = 576;
  const size_t n = size_t(rows * dim);
  const auto x = random_normal(n, 8), w = norm_weight(dim, 9);
  std::vector<float> want(n);
  mf::rmsnorm(x.data(), w.data(), rows, dim, kEps, want.data());
  DeviceBuffer dx = upload_f32(x), dw = upload_f32(w);
  Stream stream;
  sync_device();
  rmsnorm(dx.as<float>(), dw.as<float>(), rows, dim, kEps, dx.as<float>(), nullptr, stream.get());
  stream.synchronize();
  EXPECT_LT(max_rel_err(download_f32(dx.as<float>(), n), want), kF32Tol);
}

TEST_F(CudaNorm, BackwardMatchesCpu) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(name(c));
    const size_t n = size_t(c.rows * c.dim);
    const auto x = random_normal(n, 10, 1.5f), w = norm_weight(c.dim, 11);
    const auto dy = round_to_bf16(random_normal(n, 12));
    const auto dx0 = random_normal(n, 13, 0.5f), dw0 = random_normal(size_t(c.dim), 14, 0.5f);
    std::vector<float> cpu_dx(n), want_dw = dw0;
    mf::rmsnorm_backward(x.data(), w.data(), dy.data(), c.rows, c.dim, kEps, cpu_dx.data(), want_dw.data());
    std::vector<float> want_dx = dx0;
    for (size_t i = 0; i < n; ++i) want_dx[i] += cpu_dx[i];

    DeviceBuffer dx_in = upload_f32(x), dw_in = upload_f32(w), ddy = upload_bf16(dy);
    DeviceBuffer y(n * sizeof(bf16)), rstd(size_t(c.rows) * sizeof(float));
    DeviceBuffer ddx = upload_f32(dx0), ddw = upload_f32(dw0), ddx_frozen = upload_f32(dx0);
    DeviceBuffer scratch(rmsnorm_backward_scratch_bytes(c.rows, c.dim));
    Stream stream;
    sync_device();
    rmsnorm(dx_in.as<float>(), dw_in.as<float>(), c.rows, c.dim, kEps, y.as<bf16>(), rstd.as<float>(), stream.get());
    rmsnorm_backward(ddy.as<bf16>(), dx_in.as<float>(), dw_in.as<float>(), rstd.as<float>(), c.rows, c.dim,
                     ddx.as<float>(), ddw.as<float>(), scratch.get(), stream.get());
    // Frozen norm: no dweight, no scratch; dx is the same.
    rmsnorm_backward(ddy.as<bf16>(), dx_in.as<float>(), dw_in.as<float>(), rstd.as<float>(), c.rows, c.dim,
                     ddx_frozen.as<float>(), nullptr, nullptr, stream.get());
    stream.synchronize();
    const auto got_dx = download_f32(ddx.as<float>(), n);
    EXPECT_LT(max_rel_err(got_dx, want_dx), kF32Tol);
    EXPECT_LT(max_rel_err(download_f32(ddw.as<float>(), size_t(c.dim)), want_dw), kF32Tol);
    EXPECT_EQ(download_f32(ddx_frozen.as<float>(), n), got_dx);
  }
}

// Same inputs, same bits: dweight goes through per-block partials, never float atomics.
TEST_F(CudaNorm, BackwardIsDeterministic) {
  const int64_t rows = 1000, dim = 576;  // more rows than partial rows: blocks take several rows
  const size_t n = size_t(rows * dim);
  const auto x = random_normal(n, 15), w = norm_weight(dim, 16), dy = round_to_bf16(random_normal(n, 17));
  DeviceBuffer dx_in = upload_f32(x), dw_in = upload_f32(w), ddy = upload_bf16(dy);
  DeviceBuffer y(n * sizeof(bf16)), rstd(size_t(rows) * sizeof(float));
  DeviceBuffer scratch(rmsnorm_backward_scratch_bytes(rows, dim));
  std::vector<float> runs[2];
  std::vector<float> cpu_dx(n), want_dw(size_t(dim), 0.0f);
  mf::rmsnorm_backward(x.data(), w.data(), dy.data(), rows, dim, kEps, cpu_dx.data(), want_dw.data());
  for (auto& run : runs) {
    DeviceBuffer ddx(n * sizeof(float)), ddw(size_t(dim) * sizeof(float));
    ddx.zero();
    ddw.zero();
    Stream stream;
    sync_device();
    rmsnorm(dx_in.as<float>(), dw_in.as<float>(), rows, dim, kEps, y.as<bf16>(), rstd.as<float>(), stream.get());
    rmsnorm_backward(ddy.as<bf16>(), dx_in.as<float>(), dw_in.as<float>(), rstd.as<float>(), rows, dim,
                     ddx.as<float>(), ddw.as<float>(), scratch.get(), stream.get());
    stream.synchronize();
    run = download_f32(ddw.as<float>(), size_t(dim));
    EXPECT_LT(max_rel_err(download_f32(ddx.as<float>(), n), cpu_dx), kF32Tol);
  }
  EXPECT_EQ(runs[0], runs[1]);
  EXPECT_LT(max_rel_err(runs[0], want_dw), kF32Tol);
}

TEST_F(CudaNorm, EmptyRowsDoNothing) {
  Stream stream;
  rmsnorm(static_cast<const float*>(nullptr), nullptr, 0, 576, kEps, static_cast<bf16*>(nullptr), nullptr,
          stream.get());
  rmsnorm_backward(nullptr, nullptr, nullptr, nullptr, 0, 576, nullptr, nullptr, nullptr, stream.get());
  stream.synchronize();
  EXPECT_EQ(rmsnorm_backward_scratch_bytes(0, 576), 0u);
}

// Runs without a GPU as well (moved here from the former test_kernels.cpp).
TEST(CudaDevice, CountNeverThrows) { EXPECT_GE(device_count(), 0); }

}  // namespace

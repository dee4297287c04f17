// The shared expert's gated residual add, forward and backward, against its CPU twin
// (kernels/cpu/gated_add) on the same bf16-rounded inputs.
#include <gtest/gtest.h>

#include <cmath>

#include "cuda_test_util.h"
#include "kernels/cpu/gated_add.h"
#include "kernels/cuda/gated_add.h"

namespace {

using namespace mf::cuda;
using namespace mf::cuda::testing;

class CudaGatedAdd : public CudaTest {};

void check(bool gated, int64_t rows, int64_t H) {
  const auto y = round_to_bf16(random_normal(size_t(rows * H), 1));
  const auto logits = random_normal(size_t(rows), 2, 2.0f);
  const auto base = random_normal(size_t(rows * H), 3);
  const auto dout = random_normal(size_t(rows * H), 4);
  auto d_y = upload_bf16(y), d_logits = upload_f32(logits), d_out = upload_f32(base), d_dout = upload_f32(dout);
  DeviceBuffer d_dy(size_t(rows * H) * 2), d_dlogits(size_t(rows) * 4);
  Stream stream;
  const float* gate = gated ? d_logits.as<float>() : nullptr;
  sigmoid_gated_add(d_y.as<bf16>(), gate, rows, H, d_out.as<float>(), stream.get());
  sigmoid_gated_add_backward(d_dout.as<float>(), d_y.as<bf16>(), gate, rows, H, d_dy.as<bf16>(),
                             gated ? d_dlogits.as<float>() : nullptr, stream.get());
  stream.synchronize();
  std::vector<float> want_out(base), want_dy(y.size()), want_dlogits(static_cast<size_t>(rows));
  mf::sigmoid_gated_add(y.data(), gated ? logits.data() : nullptr, rows, H, want_out.data());
  mf::sigmoid_gated_add_backward(dout.data(), y.data(), gated ? logits.data() : nullptr, rows, H, want_dy.data(),
                                 want_dlogits.data());
  EXPECT_LT(max_rel_err(download_f32(d_out.as<float>(), want_out.size()), want_out), kF32Tol);
  EXPECT_LT(max_rel_err(download_bf16(d_dy.as<bf16>(), want_dy.size()), want_dy), kBf16Tol);
  if (gated) {
    EXPECT_LT(max_rel_err(download_f32(d_dlogits.as<float>(), size_t(rows)), want_dlogits), kF32Tol);
  }
}

TEST_F(CudaGatedAdd, GatedMatchesHost) { check(true, 37, 576); }
TEST_F(CudaGatedAdd, UngatedMatchesHost) { check(false, 5, 1001); }

}  // namespace

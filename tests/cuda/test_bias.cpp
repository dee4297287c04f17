// Bias add and bias gradient against float64 host sums.
#include <gtest/gtest.h>

#include "cuda_test_util.h"
#include "kernels/cuda/bias.h"

namespace {

using namespace mf::cuda;
using namespace mf::cuda::testing;

class CudaBias : public CudaTest {};

TEST_F(CudaBias, AddAndGradientMatchHost) {
  for (int64_t rows : {1, 37, 300, 1000}) {
    const int64_t cols = 96;
    const auto y = round_to_bf16(random_normal(size_t(rows * cols), 1));
    const auto bias = random_normal(size_t(cols), 2);
    const auto start = random_normal(size_t(cols), 3);
    auto d_y16 = upload_bf16(y), d_y32 = upload_f32(y), d_bias = upload_f32(bias), d_db16 = upload_f32(start),
         d_db32 = upload_f32(start);
    DeviceBuffer scratch(bias_backward_scratch_bytes(rows, cols));
    Stream stream;
    // Gradients first (of the unbiased values), then the adds.
    bias_backward(d_y16.as<bf16>(), rows, cols, d_db16.as<float>(), scratch.get(), stream.get());
    bias_backward(d_y32.as<float>(), rows, cols, d_db32.as<float>(), scratch.get(), stream.get());
    add_bias(d_y16.as<bf16>(), d_bias.as<float>(), rows, cols, stream.get());
    add_bias(d_y32.as<float>(), d_bias.as<float>(), rows, cols, stream.get());
    stream.synchronize();
    std::vector<float> want_y(y), want_db(start);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) want_y[size_t(r * cols + c)] += bias[size_t(c)];
    for (int64_t c = 0; c < cols; ++c) {
      double s = start[size_t(c)];
      for (int64_t r = 0; r < rows; ++r) s += y[size_t(r * cols + c)];
      want_db[size_t(c)] = float(s);
    }
    EXPECT_LT(max_rel_err(download_bf16(d_y16.as<bf16>(), want_y.size()), want_y), kBf16Tol) << rows;
    EXPECT_LT(max_rel_err(download_f32(d_y32.as<float>(), want_y.size()), want_y), kF32Tol) << rows;
    EXPECT_LT(max_rel_err(download_f32(d_db16.as<float>(), size_t(cols)), want_db), kF32Tol) << rows;
    EXPECT_LT(max_rel_err(download_f32(d_db32.as<float>(), size_t(cols)), want_db), kF32Tol) << rows;
  }
}

}  // namespace

// CUDA SwiGLU (bf16, fused gate_up layout) against the CPU kernel.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "cuda_test_util.h"
#include "kernels/cpu/activation.h"
#include "kernels/cuda/activation.h"
#include "kernels/cuda/device.h"

namespace {

using namespace mf::cuda;
using mf::cuda::testing::kBf16Tol;
using mf::cuda::testing::max_rel_err;
using mf::cuda::testing::random_normal;
using mf::cuda::testing::round_to_bf16;

class CudaActivation : public mf::cuda::testing::CudaTest {};

struct Case {
  int64_t rows, width;
};
// 576: 16-byte path; 1001: scalar path.
const Case kCases[] = {{1, 576}, {37, 576}, {1, 1001}, {37, 1001}};

std::string name(const Case& c) { return "rows=" + std::to_string(c.rows) + " width=" + std::to_string(c.width); }

void sync_device() { check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

// Column block [col, col + width) of a [rows, stride] matrix, as a dense [rows, width] one.
std::vector<float> columns(const std::vector<float>& m, int64_t rows, int64_t stride, int64_t col, int64_t width) {
  std::vector<float> out(static_cast<size_t>(rows * width));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < width; ++c) out[size_t(r * width + c)] = m[size_t(r * stride + col + c)];
  return out;
}

struct Reference {
  std::vector<float> out, dgate, dup;  // dense [rows, width]
};

Reference cpu_reference(const std::vector<float>& gate_up, const std::vector<float>& dout, const Case& c) {
  const auto gate = columns(gate_up, c.rows, 2 * c.width, 0, c.width);
  const auto up = columns(gate_up, c.rows, 2 * c.width, c.width, c.width);
  const int64_t n = c.rows * c.width;
  Reference ref{std::vector<float>(size_t(n)), std::vector<float>(size_t(n)), std::vector<float>(size_t(n))};
  mf::silu_mul(gate.data(), up.data(), ref.out.data(), n);
  mf::silu_mul_backward(gate.data(), up.data(), dout.data(), ref.dgate.data(), ref.dup.data(), n);
  return ref;
}

// gate and up read in place from one fused [rows, 2 * width] buffer.
TEST_F(CudaActivation, SiluMulFusedMatchesCpu) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(name(c));
    const size_t n = size_t(c.rows * c.width);
    const auto gate_up = round_to_bf16(random_normal(2 * n, 1, 2.0f));
    const auto dout = round_to_bf16(random_normal(n, 2));
    const Reference ref = cpu_reference(gate_up, dout, c);
    DeviceBuffer dgu = upload_bf16(gate_up), dd = upload_bf16(dout);
    DeviceBuffer out(n * sizeof(bf16)), grad(2 * n * sizeof(bf16));
    const bf16* gate = dgu.as<bf16>();
    const bf16* up = dgu.as<bf16>() + c.width;
    Stream stream;
    sync_device();
    silu_mul(gate, up, c.rows, c.width, 2 * c.width, out.as<bf16>(), stream.get());
    silu_mul_backward(gate, up, dd.as<bf16>(), c.rows, c.width, 2 * c.width, grad.as<bf16>(),
                      grad.as<bf16>() + c.width, stream.get());
    stream.synchronize();
    EXPECT_LT(max_rel_err(download_bf16(out.as<bf16>(), n), ref.out), kBf16Tol);
    const auto g = download_bf16(grad.as<bf16>(), 2 * n);
    EXPECT_LT(max_rel_err(columns(g, c.rows, 2 * c.width, 0, c.width), ref.dgate), kBf16Tol);
    EXPECT_LT(max_rel_err(columns(g, c.rows, 2 * c.width, c.width, c.width), ref.dup), kBf16Tol);
  }
}

// Separate dense gate and up (in_stride = width), and a backward written over its inputs.
TEST_F(CudaActivation, SiluMulSeparateAndInPlaceBackward) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(name(c));
    const size_t n = size_t(c.rows * c.width);
    const auto gate_up = round_to_bf16(random_normal(2 * n, 3, 2.0f));
    const auto dout = round_to_bf16(random_normal(n, 4));
    const Reference ref = cpu_reference(gate_up, dout, c);
    DeviceBuffer dgate = upload_bf16(columns(gate_up, c.rows, 2 * c.width, 0, c.width));
    DeviceBuffer dup = upload_bf16(columns(gate_up, c.rows, 2 * c.width, c.width, c.width));
    DeviceBuffer dd = upload_bf16(dout), out(n * sizeof(bf16));
    Stream stream;
    sync_device();
    silu_mul(dgate.as<bf16>(), dup.as<bf16>(), c.rows, c.width, c.width, out.as<bf16>(), stream.get());
    silu_mul_backward(dgate.as<bf16>(), dup.as<bf16>(), dd.as<bf16>(), c.rows, c.width, c.width, dgate.as<bf16>(),
                      dup.as<bf16>(), stream.get());
    stream.synchronize();
    EXPECT_LT(max_rel_err(download_bf16(out.as<bf16>(), n), ref.out), kBf16Tol);
    EXPECT_LT(max_rel_err(download_bf16(dgate.as<bf16>(), n), ref.dgate), kBf16Tol);
    EXPECT_LT(max_rel_err(download_bf16(dup.as<bf16>(), n), ref.dup), kBf16Tol);
  }
}

TEST_F(CudaActivation, BadStrideThrows) {
  Stream stream;
  EXPECT_THROW(silu_mul(nullptr, nullptr, 1, 8, 4, nullptr, stream.get()), mf::Error);
}

}  // namespace

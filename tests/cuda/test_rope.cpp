// CUDA rotary embeddings (bf16, fp32 math) against the CPU kernel.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "cuda_test_util.h"
#include "kernels/cpu/rope.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/rope.h"

namespace {

using namespace mf::cuda;
using mf::cuda::testing::kBf16Tol;
using mf::cuda::testing::max_rel_err;
using mf::cuda::testing::random_normal;
using mf::cuda::testing::round_to_bf16;

class CudaRope : public mf::cuda::testing::CudaTest {};

struct Case {
  int64_t tokens;
  int heads, head_dim;
};
// head_dim 64: 8 pairs per thread; 12: 2 pairs; 6 (half = 3): one pair.
const Case kCases[] = {{1, 3, 64}, {37, 3, 64}, {37, 4, 12}, {1, 2, 6}, {37, 2, 6}};
constexpr int kMaxPositions = 4096;
constexpr double kTheta = 10000.0;

std::string name(const Case& c) {
  return "tokens=" + std::to_string(c.tokens) + " heads=" + std::to_string(c.heads) +
         " head_dim=" + std::to_string(c.head_dim);
}

void sync_device() { check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

std::vector<int32_t> random_positions(int64_t tokens, uint64_t seed) {
  mf::Rng rng(seed);
  std::vector<int32_t> p(static_cast<size_t>(tokens));
  for (auto& v : p) v = int32_t(rng.below(kMaxPositions));
  return p;
}

DeviceBuffer upload_i32(const std::vector<int32_t>& v) {
  DeviceBuffer b(v.size() * sizeof(int32_t));
  b.upload(v.data(), v.size() * sizeof(int32_t));
  return b;
}

void check_direction(bool backward) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(name(c));
    const mf::RopeTable table(c.head_dim, kMaxPositions, kTheta);
    const DeviceRopeTable dtable(table);
    const size_t n = size_t(c.tokens) * size_t(c.heads) * size_t(c.head_dim);
    const auto x = round_to_bf16(random_normal(n, 1));
    auto pos = random_positions(c.tokens, 2);
    pos[0] = kMaxPositions - 1;  // the far end of the table
    auto want = x;
    if (backward)
      mf::rope_backward(want.data(), c.tokens, c.heads, pos.data(), table);
    else
      mf::rope_apply(want.data(), c.tokens, c.heads, pos.data(), table);
    DeviceBuffer dx = upload_bf16(x), dpos = upload_i32(pos);
    Stream stream;
    sync_device();
    if (backward)
      rope_backward(dx.as<bf16>(), c.tokens, c.heads, c.head_dim, dpos.as<int32_t>(), dtable, stream.get());
    else
      rope_apply(dx.as<bf16>(), c.tokens, c.heads, c.head_dim, dpos.as<int32_t>(), dtable, stream.get());
    stream.synchronize();
    EXPECT_LT(max_rel_err(download_bf16(dx.as<bf16>(), n), want), kBf16Tol);
  }
}

TEST_F(CudaRope, ApplyMatchesCpu) { check_direction(false); }
TEST_F(CudaRope, BackwardMatchesCpu) { check_direction(true); }

// The rotation is orthogonal: backward(apply(x)) is x up to two bf16 roundings.
TEST_F(CudaRope, BackwardUndoesApply) {
  const int64_t tokens = 37;
  const int heads = 3, head_dim = 64;
  const DeviceRopeTable dtable(head_dim, kMaxPositions, kTheta);
  EXPECT_EQ(dtable.head_dim(), head_dim);
  EXPECT_EQ(dtable.max_positions(), kMaxPositions);
  const size_t n = size_t(tokens) * heads * head_dim;
  const auto x = round_to_bf16(random_normal(n, 3));
  DeviceBuffer dx = upload_bf16(x), dpos = upload_i32(random_positions(tokens, 4));
  Stream stream;
  sync_device();
  rope_apply(dx.as<bf16>(), tokens, heads, head_dim, dpos.as<int32_t>(), dtable, stream.get());
  rope_backward(dx.as<bf16>(), tokens, heads, head_dim, dpos.as<int32_t>(), dtable, stream.get());
  stream.synchronize();
  EXPECT_LT(max_rel_err(download_bf16(dx.as<bf16>(), n), x), 2 * kBf16Tol);
}

// A position outside the table leaves its token as it was (never read out of bounds).
TEST_F(CudaRope, PositionOutsideTableLeavesTokenUnrotated) {
  const int64_t tokens = 3;
  const int heads = 2, head_dim = 64;
  const DeviceRopeTable dtable(head_dim, kMaxPositions, kTheta);
  const size_t n = size_t(tokens) * heads * head_dim, per_token = size_t(heads) * head_dim;
  const auto x = round_to_bf16(random_normal(n, 5));
  DeviceBuffer dx = upload_bf16(x), dpos = upload_i32({5, kMaxPositions, -1});
  Stream stream;
  sync_device();
  rope_apply(dx.as<bf16>(), tokens, heads, head_dim, dpos.as<int32_t>(), dtable, stream.get());
  stream.synchronize();
  const auto got = download_bf16(dx.as<bf16>(), n);
  EXPECT_NE(std::vector<float>(got.begin(), got.begin() + long(per_token)),
            std::vector<float>(x.begin(), x.begin() + long(per_token)));
  EXPECT_EQ(std::vector<float>(got.begin() + long(per_token), got.end()),
            std::vector<float>(x.begin() + long(per_token), x.end()));
}

TEST_F(CudaRope, HeadDimMustMatchTable) {
  const DeviceRopeTable dtable(64, 16, kTheta);
  Stream stream;
  EXPECT_THROW(rope_apply(nullptr, 1, 1, 32, nullptr, dtable, stream.get()), mf::Error);
}

}  // namespace

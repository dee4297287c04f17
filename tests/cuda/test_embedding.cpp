// CUDA token embedding and its deterministic backward against the CPU (model/blocks.h).
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "cuda_test_util.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/embedding.h"
#include "model/blocks.h"

namespace {

using namespace mf::cuda;
using mf::cuda::testing::random_normal;
using mf::cuda::testing::round_to_bf16;

class CudaEmbedding : public mf::cuda::testing::CudaTest {};

constexpr int64_t kVocab = 50;

struct Case {
  int64_t n, H;
};
// 576: 16-byte path; 37 and 1001: scalar path.
const Case kCases[] = {{1, 576}, {37, 576}, {37, 37}, {1, 1001}, {37, 1001}};

std::string name(const Case& c) { return "n=" + std::to_string(c.n) + " H=" + std::to_string(c.H); }

void sync_device() { check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

DeviceBuffer upload_i32(const std::vector<int32_t>& v) {
  DeviceBuffer b(v.size() * sizeof(int32_t));
  b.upload(v.data(), v.size() * sizeof(int32_t));
  return b;
}

// Random ids with repeats (37 draws from 50, plus a forced repeat).
std::vector<int32_t> random_ids(int64_t n, uint64_t seed) {
  mf::Rng rng(seed);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& id : ids) id = int32_t(rng.below(kVocab));
  if (n > 5) ids[5] = ids[0];
  return ids;
}

TEST_F(CudaEmbedding, EmbedRowsMatchesCpu) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(name(c));
    const auto table = round_to_bf16(random_normal(size_t(kVocab * c.H), 1));
    const auto ids = random_ids(c.n, 2);
    const size_t n = size_t(c.n * c.H);
    std::vector<float> want(n);
    mf::embed_tokens(mf::Tensor::from_f32({kVocab, c.H}, table), ids.data(), c.n, want.data());
    DeviceBuffer t16 = upload_bf16(table), t32 = upload_f32(table), dids = upload_i32(ids);
    DeviceBuffer x16(n * sizeof(float)), x32(n * sizeof(float));
    Stream stream;
    sync_device();
    embed_rows(t16.as<bf16>(), dids.as<int32_t>(), c.n, c.H, kVocab, x16.as<float>(), stream.get());
    embed_rows(t32.as<float>(), dids.as<int32_t>(), c.n, c.H, kVocab, x32.as<float>(), stream.get());
    stream.synchronize();
    EXPECT_EQ(download_f32(x16.as<float>(), n), want);  // bf16 -> fp32 is exact
    EXPECT_EQ(download_f32(x32.as<float>(), n), want);
  }
}

TEST_F(CudaEmbedding, IdOutsideVocabularyGivesZeroRow) {
  const int64_t H = 576;
  const auto table = random_normal(size_t(kVocab * H), 3);
  DeviceBuffer t32 = upload_f32(table), dids = upload_i32({1, int32_t(kVocab), -1}), x(3 * H * sizeof(float));
  Stream stream;
  sync_device();
  embed_rows(t32.as<float>(), dids.as<int32_t>(), 3, H, kVocab, x.as<float>(), stream.get());
  stream.synchronize();
  const auto got = download_f32(x.as<float>(), size_t(3 * H));
  EXPECT_EQ(std::vector<float>(got.begin(), got.begin() + H), std::vector<float>(table.begin() + H, table.begin() + 2 * H));
  EXPECT_EQ(std::vector<float>(got.begin() + H, got.end()), std::vector<float>(size_t(2 * H), 0.0f));
}

// Each dtable row has one writer that adds its positions in ascending order starting from the
// row's value, exactly the CPU's order: the results are bit-identical.
TEST_F(CudaEmbedding, BackwardMatchesCpuExactly) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(name(c));
    const auto ids = random_ids(c.n, 4);
    const auto dx = random_normal(size_t(c.n * c.H), 5);
    const auto dtable0 = random_normal(size_t(kVocab * c.H), 6);
    auto want = dtable0;
    mf::embed_tokens_backward(ids.data(), c.n, dx.data(), c.H, kVocab, want.data());
    const EmbeddingGradPlan plan = make_embedding_grad_plan(ids, kVocab);
    DeviceBuffer pids = upload_i32(plan.ids), poff = upload_i32(plan.offsets), ppos = upload_i32(plan.positions);
    DeviceBuffer ddx = upload_f32(dx), dtable = upload_f32(dtable0);
    Stream stream;
    sync_device();
    embed_rows_backward(pids.as<int32_t>(), poff.as<int32_t>(), ppos.as<int32_t>(), plan.unique(), ddx.as<float>(),
                        c.H, dtable.as<float>(), stream.get());
    stream.synchronize();
    EXPECT_EQ(download_f32(dtable.as<float>(), want.size()), want);
  }
}

// The plan is host-only: these run without a GPU too.
TEST(EmbeddingGradPlan, GroupsPositionsByIdAscending) {
  const std::vector<int32_t> ids = {7, 3, 7, 0, 3, 7};
  const EmbeddingGradPlan plan = make_embedding_grad_plan(ids, 10);
  EXPECT_EQ(plan.ids, (std::vector<int32_t>{0, 3, 7}));
  EXPECT_EQ(plan.offsets, (std::vector<int32_t>{0, 1, 3, 6}));
  EXPECT_EQ(plan.positions, (std::vector<int32_t>{3, 1, 4, 0, 2, 5}));
  EXPECT_EQ(plan.unique(), 3);
}

TEST(EmbeddingGradPlan, EmptyAndBadIds) {
  const EmbeddingGradPlan empty = make_embedding_grad_plan({}, 10);
  EXPECT_EQ(empty.unique(), 0);
  EXPECT_EQ(empty.offsets, (std::vector<int32_t>{0}));
  const std::vector<int32_t> too_big = {1, 10}, negative = {-1};
  EXPECT_THROW(make_embedding_grad_plan(too_big, 10), mf::Error);
  EXPECT_THROW(make_embedding_grad_plan(negative, 10), mf::Error);
}

}  // namespace

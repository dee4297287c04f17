// CUDA fused cross-entropy (bf16 logits, gradient over the logits) and the deterministic loss
// sum against the CPU kernel.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"
#include "cuda_test_util.h"
#include "kernels/cpu/softmax_xent.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/softmax_xent.h"

namespace {

using namespace mf::cuda;
using mf::cuda::testing::kF32Tol;
using mf::cuda::testing::max_rel_err;
using mf::cuda::testing::random_normal;
using mf::cuda::testing::round_to_bf16;

class CudaCrossEntropy : public mf::cuda::testing::CudaTest {};

struct Case {
  int64_t rows, vocab;
};
// 576, 32000, 151936: 16-byte path; 1001 and 50257: scalar path.
const Case kCases[] = {{1, 576}, {37, 576}, {1, 1001}, {37, 1001}, {37, 32000}, {5, 50257}, {3, 151936}};

std::string name(const Case& c) { return "rows=" + std::to_string(c.rows) + " vocab=" + std::to_string(c.vocab); }

void sync_device() { check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

DeviceBuffer upload_i32(const std::vector<int32_t>& v) {
  DeviceBuffer b(v.size() * sizeof(int32_t));
  b.upload(v.data(), v.size() * sizeof(int32_t));
  return b;
}

// Every 4th row has no target (row 0 always has one).
std::vector<int32_t> random_targets(int64_t rows, int64_t vocab, uint64_t seed) {
  mf::Rng rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(rows));
  for (size_t r = 0; r < t.size(); ++r) t[r] = r % 4 == 3 ? -1 : int32_t(rng.below(uint64_t(vocab)));
  if (rows > 1) t[1] = int32_t(vocab - 1);  // last entry of the vocabulary
  return t;
}

struct Reference {
  std::vector<float> row_loss, dlogits;
  mf::CrossEntropySums sums;
};

Reference cpu_reference(const std::vector<float>& logits, const std::vector<int32_t>& targets, const Case& c,
                        float grad_scale) {
  Reference ref;
  ref.row_loss.resize(size_t(c.rows));
  ref.dlogits.resize(logits.size());
  for (int64_t r = 0; r < c.rows; ++r) {
    const auto one = mf::cross_entropy(logits.data() + r * c.vocab, targets.data() + r, 1, c.vocab, grad_scale,
                                       ref.dlogits.data() + r * c.vocab);
    ref.row_loss[size_t(r)] = float(one.loss_sum);
  }
  ref.sums = mf::cross_entropy(logits.data(), targets.data(), c.rows, c.vocab, grad_scale, nullptr);
  return ref;
}

// Element by element: one bf16 rounding (2^-9) of each gradient entry, however small.
void expect_close_elementwise(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  size_t bad = 0;
  for (size_t i = 0; i < want.size(); ++i)
    if (!(std::fabs(got[i] - want[i]) <= std::fabs(want[i]) / 128 + 1e-12f)) {
      if (bad++ < 5) ADD_FAILURE() << "entry " << i << ": got " << got[i] << ", want " << want[i];
    }
  EXPECT_EQ(bad, 0u);
}

TEST_F(CudaCrossEntropy, ForwardBackwardMatchesCpu) {
  const float grad_scale = 1.0f / 29;
  for (const Case& c : kCases) {
    SCOPED_TRACE(name(c));
    const size_t n = size_t(c.rows * c.vocab);
    const auto logits = round_to_bf16(random_normal(n, 1, 3.0f));
    const auto targets = random_targets(c.rows, c.vocab, 2);
    const Reference ref = cpu_reference(logits, targets, c, grad_scale);
    DeviceBuffer dlogits = upload_bf16(logits), dtargets = upload_i32(targets);
    DeviceBuffer row_loss(size_t(c.rows) * sizeof(float)), totals(sizeof(CrossEntropyTotals));
    Stream stream;
    sync_device();
    check(cudaMemsetAsync(totals.get(), 0, sizeof(CrossEntropyTotals), stream.get()), "cudaMemsetAsync");
    cross_entropy_forward_backward(dlogits.as<bf16>(), dtargets.as<int32_t>(), c.rows, c.vocab, grad_scale,
                                   row_loss.as<float>(), stream.get());
    sum_rows(row_loss.as<float>(), dtargets.as<int32_t>(), c.rows, totals.as<CrossEntropyTotals>(), stream.get());
    stream.synchronize();
    const auto got_loss = download_f32(row_loss.as<float>(), size_t(c.rows));
    EXPECT_LT(max_rel_err(got_loss, ref.row_loss), kF32Tol);
    for (size_t r = 0; r < targets.size(); ++r) {
      if (targets[r] < 0) {
        EXPECT_EQ(got_loss[r], 0.0f) << "row " << r;
      }
    }
    expect_close_elementwise(download_bf16(dlogits.as<bf16>(), n), ref.dlogits);
    CrossEntropyTotals got{};
    totals.download(&got, sizeof(got));
    EXPECT_EQ(got.counted, ref.sums.counted);
    EXPECT_NEAR(got.loss_sum, ref.sums.loss_sum, 1e-5 * ref.sums.loss_sum);
  }
}

// grad_scale 0 (evaluation): the logits are left as they are, the losses are the same.
TEST_F(CudaCrossEntropy, ZeroGradScaleKeepsLogits) {
  const Case c{37, 1001};
  const size_t n = size_t(c.rows * c.vocab);
  const auto logits = round_to_bf16(random_normal(n, 3, 3.0f));
  const auto targets = random_targets(c.rows, c.vocab, 4);
  const Reference ref = cpu_reference(logits, targets, c, 0.0f);
  DeviceBuffer dlogits = upload_bf16(logits), dtargets = upload_i32(targets);
  DeviceBuffer row_loss(size_t(c.rows) * sizeof(float));
  Stream stream;
  sync_device();
  cross_entropy_forward_backward(dlogits.as<bf16>(), dtargets.as<int32_t>(), c.rows, c.vocab, 0.0f,
                                 row_loss.as<float>(), stream.get());
  stream.synchronize();
  EXPECT_EQ(download_bf16(dlogits.as<bf16>(), n), logits);
  EXPECT_LT(max_rel_err(download_f32(row_loss.as<float>(), size_t(c.rows)), ref.row_loss), kF32Tol);
}

// Totals accumulate over chunks of rows (one normaliser for the whole step), in a fixed order.
TEST_F(CudaCrossEntropy, SumRowsAccumulatesOverChunks) {
  const Case c{37, 576};
  const size_t n = size_t(c.rows * c.vocab);
  const auto logits = round_to_bf16(random_normal(n, 5, 3.0f));
  const auto targets = random_targets(c.rows, c.vocab, 6);
  const Reference ref = cpu_reference(logits, targets, c, 1.0f);
  DeviceBuffer dlogits = upload_bf16(logits), dtargets = upload_i32(targets);
  DeviceBuffer row_loss(size_t(c.rows) * sizeof(float)), totals(sizeof(CrossEntropyTotals));
  const int64_t split = 20;
  Stream stream;
  sync_device();
  check(cudaMemsetAsync(totals.get(), 0, sizeof(CrossEntropyTotals), stream.get()), "cudaMemsetAsync");
  for (int64_t begin : {int64_t(0), split}) {
    const int64_t rows = begin == 0 ? split : c.rows - split;
    cross_entropy_forward_backward(dlogits.as<bf16>() + begin * c.vocab, dtargets.as<int32_t>() + begin, rows,
                                   c.vocab, 1.0f, row_loss.as<float>() + begin, stream.get());
    sum_rows(row_loss.as<float>() + begin, dtargets.as<int32_t>() + begin, rows, totals.as<CrossEntropyTotals>(),
             stream.get());
  }
  stream.synchronize();
  CrossEntropyTotals got{};
  totals.download(&got, sizeof(got));
  EXPECT_EQ(got.counted, ref.sums.counted);
  EXPECT_NEAR(got.loss_sum, ref.sums.loss_sum, 1e-5 * ref.sums.loss_sum);
}

// A target past the vocabulary: NaN loss (visible in the sum), zero gradient row.
TEST_F(CudaCrossEntropy, TargetOutsideVocabularyIsNaN) {
  const Case c{2, 576};
  const size_t n = size_t(c.rows * c.vocab);
  const auto logits = round_to_bf16(random_normal(n, 7));
  const std::vector<int32_t> targets = {3, int32_t(c.vocab)};
  DeviceBuffer dlogits = upload_bf16(logits), dtargets = upload_i32(targets);
  DeviceBuffer row_loss(size_t(c.rows) * sizeof(float));
  Stream stream;
  sync_device();
  cross_entropy_forward_backward(dlogits.as<bf16>(), dtargets.as<int32_t>(), c.rows, c.vocab, 1.0f,
                                 row_loss.as<float>(), stream.get());
  stream.synchronize();
  const auto loss = download_f32(row_loss.as<float>(), 2);
  EXPECT_TRUE(std::isfinite(loss[0]));
  EXPECT_TRUE(std::isnan(loss[1]));
  const auto d = download_bf16(dlogits.as<bf16>(), n);
  EXPECT_EQ(std::vector<float>(d.begin() + c.vocab, d.end()), std::vector<float>(size_t(c.vocab), 0.0f));
}

}  // namespace

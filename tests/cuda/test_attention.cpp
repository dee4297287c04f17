// CUDA attention (forward, backward, decode, cached prefill) against the CPU attention kernels,
// which are themselves checked against PyTorch. Inputs are rounded to bf16 first, so both sides
// see the same numbers; what remains is the GPU's bf16 rounding of its outputs and of P / dS
// before the tensor-core products.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "cuda_test_util.h"
#include "kernels/cpu/attention.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/device.h"

namespace {

using mf::cuda::DeviceBuffer;
using mf::cuda::testing::kBf16Tol;
using mf::cuda::testing::random_normal;
using mf::cuda::testing::round_to_bf16;

// Gradients pass through two bf16-rounded operands (P or dS, as in FlashAttention-2) on top of
// the output rounding, so they get twice the output tolerance.
constexpr double kGradTol = 2 * kBf16Tol;
// lse is fp32 throughout; the host computes it in double from the same bf16 inputs.
constexpr double kLseTol = 1e-3;
// With T = 1 the single key has probability 1 whatever its score, so dq and dk are exactly 0 on
// the CPU and rounding noise (~1e-7) on the GPU: errors are measured against at least this.
constexpr double kGradFloor = 1e-3;

// max |got - want| / max(max |want|, floor), and infinity when the GPU produced a NaN or Inf
// (testing::max_rel_err would let a NaN through std::max, and the cache tests rely on NaN
// poisoning to catch reads of positions a query must not see).
double rel_err(const std::vector<float>& got, const std::vector<float>& want, double floor = 1e-30) {
  double err = 0, scale = floor;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i])) return std::numeric_limits<double>::infinity();
    err = std::max(err, double(std::fabs(got[i] - want[i])));
    scale = std::max(scale, double(std::fabs(want[i])));
  }
  return err / scale;
}

struct Shape {
  int batch, T, n_heads, n_kv_heads, head_dim;
};

mf::cuda::AttentionShape shape_of(const Shape& s, float scale) {
  return {s.batch, s.T, s.n_heads, s.n_kv_heads, s.head_dim, scale};
}

std::string describe(const Shape& s) {
  return "batch " + std::to_string(s.batch) + " T " + std::to_string(s.T) + " heads " + std::to_string(s.n_heads) +
         "/" + std::to_string(s.n_kv_heads) + " head_dim " + std::to_string(s.head_dim);
}

// Ragged lengths (1, 37, 130 queries: partial 64-row tiles), GQA ratios 1 and 3, every head size.
std::vector<Shape> shapes() {
  std::vector<Shape> out;
  for (int T : {1, 37, 130})
    for (int head_dim : {64, 128}) {
      out.push_back({2, T, 4, 4, head_dim});
      out.push_back({2, T, 6, 2, head_dim});
    }
  out.push_back({2, 70, 3, 1, 32});
  out.push_back({2, 70, 6, 2, 96});
  return out;
}

DeviceBuffer upload(const std::vector<float>& host) { return mf::cuda::upload_bf16(host); }

DeviceBuffer upload_ints(const std::vector<int32_t>& host) {
  DeviceBuffer buffer(host.size() * sizeof(int32_t), "test ints");
  buffer.upload(host.data(), host.size() * sizeof(int32_t));
  return buffer;
}

std::vector<float> download(const DeviceBuffer& buffer, size_t count) {
  return mf::cuda::download_bf16(buffer.as<mf::cuda::bf16>(), count);
}

// Uploads are synchronous on the legacy stream; the kernels run on their own non-blocking
// stream, so the device is drained in between.
void drain() { mf::cuda::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

// CPU attention of T queries against the first S positions of one sequence's keys/values.
void cpu_forward(const float* q, const float* k, const float* v, int64_t kv_stride, int T, int S, int n_heads,
                 int n_kv_heads, int head_dim, float scale, float* out) {
  std::vector<float> scratch(mf::attention_scratch_floats(T, S));
  mf::attention_forward(q, k, v, kv_stride, T, S, n_heads, n_kv_heads, head_dim, scale, out, scratch.data());
}

// Inputs of one training-shaped problem, already rounded to bf16.
struct Problem {
  Shape s;
  float scale;
  std::vector<float> q, k, v;
  size_t q_count() const { return size_t(s.batch) * s.T * s.n_heads * s.head_dim; }
  size_t kv_count() const { return size_t(s.batch) * s.T * s.n_kv_heads * s.head_dim; }
  size_t lse_count() const { return size_t(s.batch) * s.n_heads * s.T; }
};

Problem make_problem(const Shape& s, uint64_t seed) {
  Problem p{s, 1.0f / std::sqrt(float(s.head_dim)), {}, {}, {}};
  p.q = round_to_bf16(random_normal(p.q_count(), seed));
  p.k = round_to_bf16(random_normal(p.kv_count(), seed + 1));
  p.v = round_to_bf16(random_normal(p.kv_count(), seed + 2));
  return p;
}

std::vector<float> cpu_forward_all(const Problem& p) {
  const Shape& s = p.s;
  std::vector<float> out(p.q_count());
  const size_t q_seq = size_t(s.T) * s.n_heads * s.head_dim, kv_seq = size_t(s.T) * s.n_kv_heads * s.head_dim;
  for (int b = 0; b < s.batch; ++b)
    cpu_forward(p.q.data() + b * q_seq, p.k.data() + b * kv_seq, p.v.data() + b * kv_seq,
                int64_t(s.n_kv_heads) * s.head_dim, s.T, s.T, s.n_heads, s.n_kv_heads, s.head_dim, p.scale,
                out.data() + b * q_seq);
  return out;
}

// log(sum_{j <= t} exp(scale * q_t . k_j)) in double, laid out [batch, n_heads, T].
std::vector<float> host_lse(const Problem& p) {
  const Shape& s = p.s;
  const int D = s.head_dim, group = s.n_heads / s.n_kv_heads;
  std::vector<float> lse(p.lse_count());
  for (int b = 0; b < s.batch; ++b)
    for (int h = 0; h < s.n_heads; ++h)
      for (int t = 0; t < s.T; ++t) {
        const float* q = p.q.data() + ((size_t(b) * s.T + t) * s.n_heads + h) * D;
        std::vector<double> scores(size_t(t) + 1);
        double big = -std::numeric_limits<double>::infinity();
        for (int j = 0; j <= t; ++j) {
          const float* k = p.k.data() + ((size_t(b) * s.T + j) * s.n_kv_heads + h / group) * D;
          double dot = 0;
          for (int d = 0; d < D; ++d) dot += double(q[d]) * double(k[d]);
          scores[size_t(j)] = dot * p.scale;
          big = std::max(big, scores[size_t(j)]);
        }
        double sum = 0;
        for (double x : scores) sum += std::exp(x - big);
        lse[(size_t(b) * s.n_heads + h) * s.T + t] = float(big + std::log(sum));
      }
  return lse;
}

class CudaAttention : public mf::cuda::testing::CudaTest {};

TEST_F(CudaAttention, ForwardMatchesCpuAndLse) {
  uint64_t seed = 100;
  for (const Shape& s : shapes()) {
    SCOPED_TRACE(describe(s));
    const Problem p = make_problem(s, seed += 10);
    DeviceBuffer q = upload(p.q), k = upload(p.k), v = upload(p.v);
    DeviceBuffer out(p.q_count() * 2, "out"), lse(p.lse_count() * 4, "lse");
    drain();
    mf::cuda::Stream stream;
    mf::cuda::attention_forward(q.as<mf::cuda::bf16>(), k.as<mf::cuda::bf16>(), v.as<mf::cuda::bf16>(),
                                out.as<mf::cuda::bf16>(), lse.as<float>(), shape_of(s, p.scale), stream.get());
    stream.synchronize("attention_forward");
    EXPECT_LT(rel_err(download(out, p.q_count()), cpu_forward_all(p)), kBf16Tol);
    EXPECT_LT(rel_err(mf::cuda::download_f32(lse.as<float>(), p.lse_count()), host_lse(p)), kLseTol);
  }
}

TEST_F(CudaAttention, BackwardMatchesCpuAndIsDeterministic) {
  uint64_t seed = 500;
  for (const Shape& s : shapes()) {
    SCOPED_TRACE(describe(s));
    const Problem p = make_problem(s, seed += 10);
    const std::vector<float> dout_host = round_to_bf16(random_normal(p.q_count(), seed + 7));
    DeviceBuffer q = upload(p.q), k = upload(p.k), v = upload(p.v), dout = upload(dout_host);
    DeviceBuffer out(p.q_count() * 2, "out"), lse(p.lse_count() * 4, "lse");
    DeviceBuffer dq(p.q_count() * 2, "dq"), dk(p.kv_count() * 2, "dk"), dv(p.kv_count() * 2, "dv");
    DeviceBuffer scratch(mf::cuda::attention_backward_scratch_bytes(shape_of(s, p.scale)), "scratch");
    drain();
    mf::cuda::Stream stream;
    using mf::cuda::bf16;
    mf::cuda::attention_forward(q.as<bf16>(), k.as<bf16>(), v.as<bf16>(), out.as<bf16>(), lse.as<float>(),
                                shape_of(s, p.scale), stream.get());
    auto backward = [&] {
      mf::cuda::attention_backward(q.as<bf16>(), k.as<bf16>(), v.as<bf16>(), out.as<bf16>(), dout.as<bf16>(),
                                   lse.as<float>(), dq.as<bf16>(), dk.as<bf16>(), dv.as<bf16>(), scratch.as<float>(),
                                   shape_of(s, p.scale), stream.get());
      stream.synchronize("attention_backward");
    };
    backward();
    const std::vector<float> got_dq = download(dq, p.q_count()), got_dk = download(dk, p.kv_count()),
                             got_dv = download(dv, p.kv_count());

    std::vector<float> want_dq(p.q_count()), want_dk(p.kv_count()), want_dv(p.kv_count());
    const size_t q_seq = size_t(s.T) * s.n_heads * s.head_dim, kv_seq = size_t(s.T) * s.n_kv_heads * s.head_dim;
    std::vector<float> cpu_scratch(mf::attention_backward_scratch_floats(s.T, s.T));
    for (int b = 0; b < s.batch; ++b)
      mf::attention_backward(p.q.data() + b * q_seq, p.k.data() + b * kv_seq, p.v.data() + b * kv_seq,
                             int64_t(s.n_kv_heads) * s.head_dim, dout_host.data() + b * q_seq, s.T, s.T, s.n_heads,
                             s.n_kv_heads, s.head_dim, p.scale, want_dq.data() + b * q_seq,
                             want_dk.data() + b * kv_seq, want_dv.data() + b * kv_seq, cpu_scratch.data());
    EXPECT_LT(rel_err(got_dq, want_dq, kGradFloor), kGradTol) << "dq";
    EXPECT_LT(rel_err(got_dk, want_dk, kGradFloor), kGradTol) << "dk";
    EXPECT_LT(rel_err(got_dv, want_dv, kGradFloor), kGradTol) << "dv";

    // Written, not accumulated, and summed in a fixed order: a rerun gives the same bits.
    backward();
    EXPECT_EQ(download(dq, p.q_count()), got_dq);
    EXPECT_EQ(download(dk, p.kv_count()), got_dk);
    EXPECT_EQ(download(dv, p.kv_count()), got_dv);
  }
}

// A KV cache of `capacity` positions per sequence; positions at and after a sequence's valid
// length hold NaN, so any read of them would poison the result.
struct Cache {
  std::vector<float> k, v;
};

Cache make_cache(int batch, int capacity, int n_kv_heads, int head_dim, const std::vector<int>& valid,
                 uint64_t seed) {
  const size_t row = size_t(n_kv_heads) * head_dim, count = size_t(batch) * capacity * row;
  Cache c{round_to_bf16(random_normal(count, seed)), round_to_bf16(random_normal(count, seed + 1))};
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int b = 0; b < batch; ++b)
    for (size_t i = (size_t(b) * capacity + size_t(valid[size_t(b)])) * row; i < size_t(b + 1) * capacity * row; ++i)
      c.k[i] = c.v[i] = nan;
  return c;
}

TEST_F(CudaAttention, DecodeMatchesCpuOverTheCache) {
  struct Case {
    int capacity, n_heads, n_kv_heads, head_dim;
    std::vector<int> lengths;
  };
  // One chunk (a single kernel), and several chunks of 256 keys with ragged and empty tails.
  const std::vector<Case> cases = {{100, 4, 4, 64, {57, 100}},    {300, 6, 2, 128, {300, 1}},
                                   {700, 6, 2, 64, {513, 260}},   {700, 4, 4, 128, {256, 699}},
                                   {260, 3, 1, 32, {257, 12}},    {520, 6, 2, 96, {511, 520}}};
  uint64_t seed = 900;
  for (const Case& c : cases) {
    const int batch = int(c.lengths.size()), D = c.head_dim;
    SCOPED_TRACE("capacity " + std::to_string(c.capacity) + " heads " + std::to_string(c.n_heads) + "/" +
                 std::to_string(c.n_kv_heads) + " head_dim " + std::to_string(D));
    const float scale = 1.0f / std::sqrt(float(D));
    const size_t q_count = size_t(batch) * c.n_heads * D;
    const std::vector<float> q_host = round_to_bf16(random_normal(q_count, seed += 10));
    const Cache cache = make_cache(batch, c.capacity, c.n_kv_heads, D, c.lengths, seed + 3);
    std::vector<int32_t> lengths(c.lengths.begin(), c.lengths.end());

    DeviceBuffer q = upload(q_host), k = upload(cache.k), v = upload(cache.v), len = upload_ints(lengths);
    DeviceBuffer out(q_count * 2, "out");
    const mf::cuda::AttentionShape shape{batch, 1, c.n_heads, c.n_kv_heads, D, scale};
    DeviceBuffer scratch(mf::cuda::attention_decode_scratch_bytes(shape, c.capacity), "scratch");
    drain();
    mf::cuda::Stream stream;
    using mf::cuda::bf16;
    mf::cuda::attention_decode(q.as<bf16>(), k.as<bf16>(), v.as<bf16>(), len.as<int32_t>(), out.as<bf16>(),
                               scratch.as<float>(), shape, c.capacity, stream.get());
    stream.synchronize("attention_decode");

    std::vector<float> want(q_count);
    const size_t cache_seq = size_t(c.capacity) * c.n_kv_heads * D, q_seq = size_t(c.n_heads) * D;
    for (int b = 0; b < batch; ++b)
      cpu_forward(q_host.data() + b * q_seq, cache.k.data() + b * cache_seq, cache.v.data() + b * cache_seq,
                  int64_t(c.n_kv_heads) * D, 1, c.lengths[size_t(b)], c.n_heads, c.n_kv_heads, D, scale,
                  want.data() + b * q_seq);
    EXPECT_LT(rel_err(download(out, q_count), want), kBf16Tol);
  }
}

TEST_F(CudaAttention, CachedPrefillMatchesCpuOverTheCache) {
  struct Case {
    int T, capacity, n_heads, n_kv_heads, head_dim;
    std::vector<int> past;
  };
  const std::vector<Case> cases = {{37, 100, 4, 4, 64, {0, 45}},   {37, 100, 6, 2, 128, {63, 1}},
                                   {1, 100, 6, 2, 64, {99, 10}},   {70, 160, 4, 4, 128, {90, 3}},
                                   {130, 200, 6, 2, 64, {70, 0}}};
  uint64_t seed = 1300;
  for (const Case& c : cases) {
    const int batch = int(c.past.size()), D = c.head_dim;
    SCOPED_TRACE("T " + std::to_string(c.T) + " capacity " + std::to_string(c.capacity) + " heads " +
                 std::to_string(c.n_heads) + "/" + std::to_string(c.n_kv_heads) + " head_dim " + std::to_string(D));
    const float scale = 1.0f / std::sqrt(float(D));
    const size_t q_count = size_t(batch) * c.T * c.n_heads * D;
    const std::vector<float> q_host = round_to_bf16(random_normal(q_count, seed += 10));
    std::vector<int> valid;
    for (int past : c.past) valid.push_back(past + c.T);
    const Cache cache = make_cache(batch, c.capacity, c.n_kv_heads, D, valid, seed + 3);
    std::vector<int32_t> past(c.past.begin(), c.past.end());

    DeviceBuffer q = upload(q_host), k = upload(cache.k), v = upload(cache.v), past_dev = upload_ints(past);
    DeviceBuffer out(q_count * 2, "out");
    drain();
    mf::cuda::Stream stream;
    using mf::cuda::bf16;
    mf::cuda::attention_prefill_cached(q.as<bf16>(), k.as<bf16>(), v.as<bf16>(), past_dev.as<int32_t>(),
                                       out.as<bf16>(), {batch, c.T, c.n_heads, c.n_kv_heads, D, scale}, c.capacity,
                                       stream.get());
    stream.synchronize("attention_prefill_cached");

    std::vector<float> want(q_count);
    const size_t cache_seq = size_t(c.capacity) * c.n_kv_heads * D, q_seq = size_t(c.T) * c.n_heads * D;
    for (int b = 0; b < batch; ++b)
      cpu_forward(q_host.data() + b * q_seq, cache.k.data() + b * cache_seq, cache.v.data() + b * cache_seq,
                  int64_t(c.n_kv_heads) * D, c.T, valid[size_t(b)], c.n_heads, c.n_kv_heads, D, scale,
                  want.data() + b * q_seq);
    EXPECT_LT(rel_err(download(out, q_count), want), kBf16Tol);
  }
}

// Shape errors are raised on the host before anything touches a device, so this runs anywhere.
TEST(CudaAttentionShapes, UnsupportedHeadDimAndBadGroupsThrow) {
  EXPECT_THROW(mf::cuda::attention_forward(nullptr, nullptr, nullptr, nullptr, nullptr, {1, 8, 4, 4, 80, 1.f}, nullptr),
               mf::Error);
  EXPECT_THROW(mf::cuda::attention_forward(nullptr, nullptr, nullptr, nullptr, nullptr, {1, 8, 6, 4, 64, 1.f}, nullptr),
               mf::Error);
  EXPECT_THROW(mf::cuda::attention_decode(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, {1, 1, 4, 4, 48, 1.f},
                                          16, nullptr),
               mf::Error);
  EXPECT_EQ(mf::cuda::attention_decode_scratch_bytes({2, 1, 4, 4, 64, 1.f}, 256), 0u);
  EXPECT_GT(mf::cuda::attention_decode_scratch_bytes({2, 1, 4, 4, 64, 1.f}, 257), 0u);
}

}  // namespace

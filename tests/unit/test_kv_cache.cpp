// KVCache element types (--cache-type-k/-v): what is stored is the fp32 row rounded to the type,
// a 16-bit cache takes half the bytes, bad types and out-of-range writes are refused, and a model
// running on an F16 cache stays close to the F32 one (the kernels' bit-exactness on the rounded
// values is checked in reference/test_kernels.cpp).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "core/rng.h"
#include "model/init.h"
#include "model/kv_cache.h"
#include "model/transformer.h"

namespace {

mf::ModelConfig tiny() {
  mf::ModelConfig c;
  c.model_type = "llama";
  c.vocab_size = 40;
  c.hidden_size = 128;
  c.intermediate_size = 96;
  c.num_layers = 2;
  c.num_heads = 2;  // head_dim 64: the vectorised attention paths
  c.num_kv_heads = 1;
  c.max_position_embeddings = 256;
  return c;
}

std::vector<float> random_rows(int64_t n, uint64_t seed) {
  mf::Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = float(rng.normal());
  return v;
}

TEST(KVCache, StoresEachTypeAsRounded) {
  const mf::ModelConfig c = tiny();
  const int64_t kv_dim = 128, head_dim = 64, capacity = 8;  // two kv heads
  mf::ModelConfig two_heads = c;
  two_heads.num_heads = 2;
  two_heads.num_kv_heads = 2;
  const std::vector<float> k = random_rows(3 * kv_dim, 1), v = random_rows(3 * kv_dim, 2);
  for (const mf::DType type : {mf::DType::F32, mf::DType::F16, mf::DType::BF16}) {
    mf::KVCache cache(two_heads, int(capacity), 2, {type, mf::DType::F32});
    ASSERT_EQ(cache.kv_dim(), kv_dim);
    cache.write(1, 1, 4, k.data(), v.data(), 3);
    const mf::CacheRows keys = cache.keys(1, 1), values = cache.values(1, 1);
    EXPECT_EQ(keys.type, type);
    EXPECT_EQ(values.type, mf::DType::F32);
    // Each kv head's positions together: [head, position, head_dim].
    EXPECT_EQ(keys.kv_stride, head_dim);
    EXPECT_EQ(keys.head_stride, capacity * head_dim);
    for (int64_t i = 0; i < 3 * kv_dim; ++i) {
      const int64_t row = i / kv_dim, head = i % kv_dim / head_dim, d = i % head_dim;
      const int64_t at = head * keys.head_stride + (4 + row) * keys.kv_stride + d;
      float stored = 0;
      if (type == mf::DType::F32) stored = static_cast<const float*>(keys.data)[at];
      if (type == mf::DType::F16) stored = mf::fp16_to_f32(static_cast<const uint16_t*>(keys.data)[at]);
      if (type == mf::DType::BF16) stored = mf::bf16_to_f32(static_cast<const uint16_t*>(keys.data)[at]);
      const float want = type == mf::DType::F16    ? mf::fp16_to_f32(mf::f32_to_fp16(k[size_t(i)]))
                         : type == mf::DType::BF16 ? mf::bf16_to_f32(mf::f32_to_bf16(k[size_t(i)]))
                                                   : k[size_t(i)];
      ASSERT_EQ(stored, want) << mf::dtype_name(type) << " element " << i;
      ASSERT_EQ(static_cast<const float*>(values.data)[at], v[size_t(i)]);
    }
  }
  EXPECT_EQ(mf::KVCache(c, 8, 2, {mf::DType::F16, mf::DType::F16}).bytes() * 2, mf::KVCache(c, 8, 2).bytes());
}

TEST(KVCache, RefusesOtherTypesAndWritesPastTheCapacity) {
  const mf::ModelConfig c = tiny();
  EXPECT_THROW(mf::KVCache(c, 8, 1, {mf::DType::Q8_0, mf::DType::F32}), mf::Error);
  EXPECT_EQ(mf::parse_kv_cache_type("F16", "-ctk"), mf::DType::F16);
  EXPECT_EQ(mf::parse_kv_cache_type("bf16", "-ctk"), mf::DType::BF16);
  try {
    mf::parse_kv_cache_type("q4_0", "--cache-type-v");
    FAIL() << "q4_0 was accepted";
  } catch (const mf::Error& e) {
    EXPECT_NE(std::string(e.what()).find("--cache-type-v: 'q4_0'"), std::string::npos) << e.what();
  }
  mf::KVCache cache(c, 8, 1, {mf::DType::F16, mf::DType::F16});
  const std::vector<float> row = random_rows(3 * 64, 3);
  EXPECT_THROW(cache.write(0, 0, 6, row.data(), row.data(), 3), mf::Error);
  EXPECT_THROW(cache.write(0, 1, 0, row.data(), row.data(), 1), mf::Error);
  EXPECT_THROW(cache.write(2, 0, 0, row.data(), row.data(), 1), mf::Error);
}

TEST(KVCache, CopyPrefixGivesAnotherSequenceTheSameRows) {
  mf::ModelConfig c = tiny();
  c.num_heads = c.num_kv_heads = 2;
  mf::KVCache cache(c, 8, 3, {mf::DType::F16, mf::DType::F32});
  const std::vector<float> k = random_rows(4 * 128, 4), v = random_rows(4 * 128, 5);
  for (int layer = 0; layer < 2; ++layer) cache.write(layer, 0, 0, k.data(), v.data(), 4);
  cache.set_length(0, 4);
  cache.copy_prefix(0, 2, 3);
  EXPECT_EQ(cache.length(2), 3);
  for (int layer = 0; layer < 2; ++layer) {
    const mf::CacheRows a = cache.keys(layer, 0), b = cache.keys(layer, 2);
    const mf::CacheRows va = cache.values(layer, 0), vb = cache.values(layer, 2);
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t i = 0; i < 3 * 64; ++i) {
        const int64_t at = h * a.head_stride + i;
        ASSERT_EQ(static_cast<const uint16_t*>(a.data)[at], static_cast<const uint16_t*>(b.data)[at]);
        ASSERT_EQ(static_cast<const float*>(va.data)[at], static_cast<const float*>(vb.data)[at]);
      }
  }
  EXPECT_THROW(cache.copy_prefix(0, 1, 5), mf::Error);  // more than sequence 0 holds
}

// A prompt (the GEMM path past 16 tokens) and decode steps on an F16 cache: the logits stay within
// the rounding of the keys and values of the F32 cache's, and are not the F32 ones (the type is used).
TEST(KVCache, HalfPrecisionCacheKeepsTheLogitsClose) {
  mf::Transformer model(mf::init_random_weights(tiny(), 7, 0.2f));
  std::vector<int32_t> prompt;
  for (int i = 0; i < 40; ++i) prompt.push_back((i * 7 + 3) % 40);
  mf::KVCache f32(model.config(), 64), f16(model.config(), 64, 1, {mf::DType::F16, mf::DType::F16});
  std::vector<mf::Tensor> a{model.forward(prompt, 1, f32)}, b{model.forward(prompt, 1, f16)};
  for (int32_t t : {5, 11, 29}) {
    a.push_back(model.forward(std::vector<int32_t>{t}, 1, f32));
    b.push_back(model.forward(std::vector<int32_t>{t}, 1, f16));
  }
  bool any_differs = false;
  for (size_t s = 0; s < a.size(); ++s) {
    double max_diff = 0, max_abs = 0;
    for (int64_t i = 0; i < a[s].numel(); ++i) {
      const float x = a[s].data<float>()[i], y = b[s].data<float>()[i];
      max_diff = std::max(max_diff, double(std::fabs(x - y)));
      max_abs = std::max(max_abs, double(std::fabs(x)));
      any_differs = any_differs || x != y;
    }
    EXPECT_LT(max_diff, 2e-3 * max_abs) << "step " << s;
  }
  EXPECT_TRUE(any_differs);
}

}  // namespace

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "core/dtype.h"
#include "core/error.h"
#include "core/half.h"
#include "core/mapped_file.h"
#include "core/rng.h"
#include "core/tensor.h"

using namespace mf;

TEST(Half, Bf16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  // 1 + 2^-8 is exactly halfway between two bf16 values: ties go to the even mantissa.
  EXPECT_EQ(f32_to_bf16(1.0f + 0x1.0p-8f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(1.0f + 0x1.8p-8f), 0x3f81);
  EXPECT_FLOAT_EQ(bf16_to_f32(0x4049), 3.140625f);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

TEST(Half, Fp16RoundTripsEveryFiniteValue) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    uint16_t bits = uint16_t(h);
    if ((bits & 0x7c00) == 0x7c00) continue;  // inf / nan
    EXPECT_EQ(f32_to_fp16(fp16_to_f32(bits)), bits) << std::hex << h;
  }
  EXPECT_EQ(f32_to_fp16(65504.f), 0x7bff);
  EXPECT_EQ(f32_to_fp16(1e6f), 0x7c00);
  EXPECT_FLOAT_EQ(fp16_to_f32(0x0001), 0x1.0p-24f);
}

TEST(DType, BytesAndParse) {
  EXPECT_EQ(dtype_bytes(DType::Q4_1, 64), 40u);
  EXPECT_EQ(dtype_bytes(DType::Q6_K, 256), 210u);
  EXPECT_EQ(parse_dtype("bf16"), DType::BF16);
  EXPECT_THROW(dtype_bytes(DType::Q8_0, 33), Error);
  EXPECT_THROW(parse_dtype("Q9_9"), Error);
}

TEST(Tensor, ReshapeAndSliceShareStorage) {
  Tensor t = Tensor::from_f32({2, 3}, std::vector<float>{0, 1, 2, 3, 4, 5});
  Tensor row = t.slice_rows(1, 2);
  EXPECT_EQ(row.shape(), (Shape{1, 3}));
  EXPECT_EQ(row.data<float>()[0], 3.f);
  EXPECT_THROW(t.reshape({4}), Error);
  EXPECT_EQ(t.reshape({3, 2}).dim(-1), 2);
}

TEST(Rng, SeedFixesSequenceAndStateRestores) {
  Rng a(42), b(42);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.next_u64(), b.next_u64());
  Rng::State s = a.state();
  float x = a.normal();
  a.set_state(s);
  EXPECT_EQ(a.normal(), x);
}

TEST(MappedFile, AtomicWriteThenMap) {
  std::string path = (std::filesystem::temp_directory_path() / "mf_core_test.bin").string();
  std::string payload = "hello moeforge";
  write_file_atomic(path, payload.data(), payload.size());
  auto file = MappedFile::open(path);
  ASSERT_EQ(file->size(), payload.size());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(file->data()), file->size()), payload);
  std::filesystem::remove(path);
  EXPECT_THROW(MappedFile::open(path), Error);
}

// Model files whose shapes make the byte count wrap past 2^64: the readers refuse them with an
// error naming the file and tensor, instead of making a view that claims more bytes than exist.
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <functional>
#include <string>

#include "core/error.h"
#include "io/gguf.h"
#include "io/safetensors.h"

namespace {

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

template <class T>
std::string le(T v) {
  std::string s(sizeof(T), '\0');
  for (size_t i = 0; i < sizeof(T); ++i) s[i] = char((uint64_t(v) >> (8 * i)) & 0xff);
  return s;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const mf::Error& e) {
    return e.what();
  }
  return "";
}

TEST(HostileSizes, SafetensorsByteCountThatWrapsIsRefused) {
  // 2^62 F32 elements are 2^64 bytes: the product wraps to 0 and would match data_offsets [0, 0].
  const std::string header = R"({"w": {"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 0]}})";
  const std::string path = ::testing::TempDir() + "/wrap.safetensors";
  write_bytes(path, le<uint64_t>(header.size()) + header);
  const std::string err = error_of([&] { mf::load_safetensors(path); });
  EXPECT_NE(err.find(path), std::string::npos) << err;
  EXPECT_NE(err.find("overflows"), std::string::npos) << err;
}

TEST(HostileSizes, GgufByteCountThatWrapsIsRefused) {
  // GGUF v3, one F32 tensor of 2^62 elements at data offset 0, no metadata, no data.
  std::string f = "GGUF" + le<uint32_t>(3) + le<uint64_t>(1) + le<uint64_t>(0);
  f += le<uint64_t>(1) + "w" + le<uint32_t>(1) + le<uint64_t>(uint64_t(1) << 62) + le<uint32_t>(0) + le<uint64_t>(0);
  f.resize((f.size() + 31) / 32 * 32, '\0');
  const std::string path = ::testing::TempDir() + "/wrap.gguf";
  write_bytes(path, f);
  const std::string err = error_of([&] { mf::GgufFile::open(path); });
  EXPECT_NE(err.find(path), std::string::npos) << err;
  EXPECT_NE(err.find("'w'"), std::string::npos) << err;
  EXPECT_NE(err.find("overflows"), std::string::npos) << err;
}

}  // namespace

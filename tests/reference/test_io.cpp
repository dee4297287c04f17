// Parity with the reference packages: files written by `safetensors`/`gguf` (gen_io.py) read
// exactly, dequantization equals gguf-py's, quantize_row produces gguf-py's bytes (K-quant bytes:
// gguf-py decodes them to moeforge's floats), and the files moeforge writes read back in Python
// (gen_io.py --check).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/half.h"
#include "core/mapped_file.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "kernels/cpu/quant.h"

using namespace mf;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

fs::path fixtures() { return fs::path(std::getenv("MOEFORGE_FIXTURES")); }

const json& manifest() {
  static const json m = json::parse(read_text_file((fixtures() / "manifest.json").string()));
  return m;
}

std::vector<float> read_f32(const fs::path& p) {
  std::string bytes = read_text_file(p.string());
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

// Element i of a plain-typed tensor, widened exactly.
double element(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::F32: return t.data<float>()[i];
    case DType::F64: return t.data<double>()[i];
    case DType::F16: return fp16_to_f32(t.data<uint16_t>()[i]);
    case DType::BF16: return bf16_to_f32(t.data<uint16_t>()[i]);
    case DType::I8: return t.data<int8_t>()[i];
    case DType::I16: return t.data<int16_t>()[i];
    case DType::I32: return t.data<int32_t>()[i];
    case DType::U8:
    case DType::BOOL: return t.data<uint8_t>()[i];
    default: ADD_FAILURE() << "unexpected dtype"; return 0;
  }
}

void expect_tensor_equals(const Tensor& t, const json& e) {
  SCOPED_TRACE(e["name"].get<std::string>());
  EXPECT_EQ(std::string(dtype_name(t.dtype())), e["dtype"].get<std::string>());
  EXPECT_EQ(t.shape(), e["shape"].get<Shape>());
  const json& vals = e["values"];
  ASSERT_EQ(size_t(t.numel()), vals.size());
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (t.dtype() == DType::I64)
      EXPECT_EQ(t.data<int64_t>()[i], vals[size_t(i)].get<int64_t>()) << i;
    else
      EXPECT_EQ(element(t, i), vals[size_t(i)].get<double>()) << i;
  }
}

}  // namespace

TEST(SafetensorsReference, EveryDtypeReadsExactly) {
  const json& m = manifest()["safetensors"];
  SafetensorsFile f = SafetensorsFile::open((fixtures() / m["file"].get<std::string>()).string());
  EXPECT_EQ(f.metadata, (m["metadata"].get<std::map<std::string, std::string>>()));
  ASSERT_EQ(f.tensors.size(), m["tensors"].size());
  for (const json& e : m["tensors"]) {
    auto it = f.tensors.find(e["name"].get<std::string>());
    ASSERT_NE(it, f.tensors.end()) << e["name"];
    expect_tensor_equals(it->second, e);
  }
}

TEST(SafetensorsReference, ShardedDirectoryWithIndex) {
  const json& m = manifest()["sharded"];
  auto tensors = load_safetensors((fixtures() / m["dir"].get<std::string>()).string());
  ASSERT_EQ(tensors.size(), m["tensors"].size());
  for (const json& e : m["tensors"]) expect_tensor_equals(tensors.at(e["name"].get<std::string>()), e);
}

namespace {

void expect_value_equals(const GgufValue& v, const json& value, GgufType type, const std::string& key) {
  SCOPED_TRACE(key);
  EXPECT_EQ(v.type, type);
  switch (type) {
    case GgufType::U8: case GgufType::U16: case GgufType::U32: case GgufType::U64:
      EXPECT_EQ(v.as_u64(), value.get<uint64_t>());
      break;
    case GgufType::I8: case GgufType::I16: case GgufType::I32: case GgufType::I64:
      EXPECT_EQ(v.as_i64(), value.get<int64_t>());
      break;
    case GgufType::F32: case GgufType::F64: EXPECT_EQ(v.as_f64(), value.get<double>()); break;
    case GgufType::BOOL: EXPECT_EQ(v.as_bool(), value.get<bool>()); break;
    case GgufType::STRING: EXPECT_EQ(v.as_string(), value.get<std::string>()); break;
    case GgufType::ARRAY: {
      const auto& elems = v.as_array();
      ASSERT_EQ(elems.size(), value.size());
      for (size_t i = 0; i < elems.size(); ++i) {
        // gguf-py infers element types: int -> I32, float -> F32, str, bool, list -> ARRAY
        GgufType et = v.array_type;
        expect_value_equals(elems[i], value[i], et, key + "[" + std::to_string(i) + "]");
      }
      break;
    }
  }
}

}  // namespace

TEST(GgufReference, MetadataOfEveryValueType) {
  const json& m = manifest()["gguf"];
  GgufFile f = GgufFile::open((fixtures() / m["file"].get<std::string>()).string());
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), m["alignment"].get<size_t>());
  EXPECT_EQ(f.data_offset() % f.alignment(), 0u);
  EXPECT_EQ(f.metadata().size(), m["metadata"].size());
  for (auto it = m["metadata"].begin(); it != m["metadata"].end(); ++it) {
    const GgufValue* v = f.find(it.key());
    ASSERT_NE(v, nullptr) << it.key();
    expect_value_equals(*v, (*it)["value"], GgufType((*it)["type"].get<uint32_t>()), it.key());
    if (it->contains("sub_type")) {
      EXPECT_EQ(v->array_type, GgufType((*it)["sub_type"].get<uint32_t>()));
    }
  }
  EXPECT_EQ(f.at("test.arr_str").as_string_array(),
            (std::vector<std::string>{"a", "", "\xC4\xA0the", "\xE6\x97\xA5\xE6\x9C\xAC"}));
  EXPECT_EQ(f.at("test.arr_i32").as_i32_array(), (std::vector<int32_t>{1, -2, 3}));
  EXPECT_EQ(f.at("test.arr_f32").as_f32_array(), (std::vector<float>{0.5f, -1.25f, 3.0f}));
  EXPECT_EQ(f.at("test.nested").as_array()[1].as_i32_array(), (std::vector<int32_t>{3, 4, 5}));
  EXPECT_EQ(f.at("test.nested_str").as_array()[0].as_string_array(), (std::vector<std::string>{"x", "y"}));
  EXPECT_THROW(f.at("test.string").as_u64(), Error);
  EXPECT_THROW(f.at("no.such.key"), Error);
}

TEST(GgufReference, TensorsDequantizeLikeGgufPy) {
  const json& m = manifest()["gguf"];
  GgufFile f = GgufFile::open((fixtures() / m["file"].get<std::string>()).string());
  std::vector<std::string> order;
  for (const json& e : m["tensors"]) order.push_back(e["name"]);
  EXPECT_EQ(f.tensor_names_in_file_order(), order);
  EXPECT_TRUE(f.unsupported_tensors().empty());
  for (const json& e : m["tensors"]) {
    std::string name = e["name"];
    SCOPED_TRACE(name);
    const Tensor& t = f.tensor(name);
    EXPECT_EQ(std::string(dtype_name(t.dtype())), e["type"].get<std::string>());
    EXPECT_EQ(t.shape(), e["shape"].get<Shape>());
    // zero-copy: the view points into the mapping
    EXPECT_EQ(t.owner().get() != nullptr, true);
    std::vector<float> want = read_f32(fixtures() / e["expected"].get<std::string>());
    Tensor got = t.to_f32();
    ASSERT_EQ(size_t(got.numel()), want.size());
    int bad = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      float g = got.data<float>()[i], w = want[i];
      if (!(std::fabs(g - w) <= 1e-6f * std::fabs(w)) && bad++ < 5)
        ADD_FAILURE() << "element " << i << ": got " << g << ", gguf-py " << w;
    }
    EXPECT_EQ(bad, 0);
  }
}

TEST(QuantReference, QuantizeRowMatchesGgufPyBytes) {
  const json& m = manifest()["quantize"];
  std::vector<float> src = read_f32(fixtures() / m["input"].get<std::string>());
  for (auto it = m["outputs"].begin(); it != m["outputs"].end(); ++it) {
    SCOPED_TRACE(it.key());
    DType t = parse_dtype(it.key());
    std::string want = read_text_file((fixtures() / it->get<std::string>()).string());
    ASSERT_EQ(want.size(), dtype_bytes(t, int64_t(src.size())));
    std::string got(want.size(), '\0');
    quantize_row(t, src.data(), got.data(), int64_t(src.size()));
    size_t diff = 0;
    for (size_t i = 0; i < want.size(); ++i) diff += got[i] != want[i];
    EXPECT_EQ(diff, 0u) << "bytes differing from gguf-py";
  }
}

// moeforge's K-quant encoders have no byte-exact reference (gguf-py does not quantize K-quants
// and llama.cpp's search differs), so the reference checks the bytes' meaning: gguf-py
// dequantizes what quantize_row wrote to exactly moeforge's dequantize_row floats, close to the
// input (gen_io.py --check-kquant). Rows: Gaussian, then blocks of zeros, a constant, one huge
// outlier, negative-only values and values near fp16's limits for the scales.
TEST(QuantReference, KQuantBytesDequantizeInGgufPyToOurFloats) {
  const int64_t row = 512, rows = 6;
  std::vector<float> src(size_t(row * rows));
  uint32_t state = 12345;
  auto uniform = [&] {  // xorshift: deterministic, no <random> distribution differences
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return float(state) / 4294967296.0f;
  };
  for (int64_t i = 0; i < row * 3; ++i) src[size_t(i)] = (uniform() + uniform() + uniform() - 1.5f) * 2.0f;
  float* r3 = src.data() + 3 * row;
  std::fill(r3, r3 + 256, 0.0f);
  std::fill(r3 + 256, r3 + 512, -0.375f);
  float* r4 = src.data() + 4 * row;
  for (int64_t i = 0; i < row; ++i) r4[i] = (uniform() - 0.5f) * 0.02f;
  r4[100] = 250.0f;
  for (int64_t i = 256; i < row; ++i) r4[i] = -1.0f - uniform();
  float* r5 = src.data() + 5 * row;
  for (int64_t i = 0; i < row; ++i) r5[i] = (uniform() - 0.5f) * (i < 256 ? 1e-5f : 3e3f);
  const fs::path dir = fixtures() / "kquant_written";
  fs::create_directories(dir);
  auto write = [&](const std::string& name, const void* p, size_t n) {
    std::ofstream(dir / name, std::ios::binary).write(static_cast<const char*>(p), std::streamsize(n));
  };
  write("input.f32", src.data(), src.size() * 4);
  for (DType t : {DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    std::vector<uint8_t> q(dtype_bytes(t, int64_t(src.size())));
    quantize_row(t, src.data(), q.data(), int64_t(src.size()));
    std::vector<float> back(src.size());
    dequantize_row(t, q.data(), back.data(), int64_t(src.size()));
    const std::string name(dtype_name(t));
    write(name + ".bin", q.data(), q.size());
    write(name + ".f32", back.data(), back.size() * 4);
  }
  const std::string cmd = std::string(std::getenv("MOEFORGE_PYTHON")) + " " + std::getenv("MOEFORGE_SOURCE_DIR") +
                          "/tests/reference/gen_io.py --check-kquant " + dir.string() + " " + std::to_string(row);
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

namespace {
std::vector<float> pattern(int64_t n, double scale) {  // same as gen_io.py's pattern()
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = float(std::sin(double(i) * 0.37) * scale);
  return v;
}

Tensor quantized(DType t, Shape shape, const std::vector<float>& v) {
  Tensor q = Tensor::empty(t, std::move(shape));
  quantize_row(t, v.data(), q.raw(), q.numel());
  return q;
}
}  // namespace

TEST(IoReference, FilesWeWriteReadBackInPython) {
  fs::path dir = fixtures() / "written";
  fs::create_directories(dir);
  {
    Tensor i64 = Tensor::empty(DType::I64, {3});
    int64_t vals[] = {-5, 0, int64_t(1) << 40};
    std::memcpy(i64.raw(), vals, sizeof vals);
    save_safetensors((dir / "written.safetensors").string(),
                     {{"a.f32", Tensor::from_f32({3, 5}, pattern(15, 2.0))},
                      {"b.bf16", quantized(DType::BF16, {2, 4}, pattern(8, 3.0))},
                      {"c.i64", i64},
                      {"d.f16", quantized(DType::F16, {6}, pattern(6, 1.0))}},
                     {{"format", "pt"}, {"who", "moeforge"}});
  }
  {
    GgufWriter w;
    w.add_kv("general.architecture", GgufValue::of_string("llama"));
    w.add_kv("general.alignment", GgufValue::of_u32(64));
    w.add_kv("test.u32", GgufValue::of_u32(7));
    w.add_kv("test.i64", GgufValue::of_int(GgufType::I64, -3));
    w.add_kv("test.f32", GgufValue::of_f32(0.25f));
    w.add_kv("test.bool", GgufValue::of_bool(true));
    w.add_kv("test.strings", GgufValue::of_string_array({"x", "yy", ""}));
    w.add_kv("test.nested", GgufValue::of_array(GgufType::ARRAY, {GgufValue::of_i32_array({1, 2}),
                                                                  GgufValue::of_i32_array({3})}));
    w.add_tensor("w.f32", Tensor::from_f32({2, 64}, pattern(128, 1.0)));
    w.add_tensor("w.q8_0", quantized(DType::Q8_0, {2, 64}, pattern(128, 1.0)));
    w.add_tensor("w.q4_0", quantized(DType::Q4_0, {2, 64}, pattern(128, 1.0)));
    w.add_tensor("w.q4_1", quantized(DType::Q4_1, {2, 64}, pattern(128, 1.0)));
    w.add_tensor("w.bf16", quantized(DType::BF16, {2, 8}, pattern(16, 1.0)));
    w.write((dir / "written.gguf").string());
  }
  std::string cmd = std::string(std::getenv("MOEFORGE_PYTHON")) + " " +
                    std::getenv("MOEFORGE_SOURCE_DIR") + "/tests/reference/gen_io.py --check " +
                    dir.string();
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  // And our own reader agrees with what we wrote.
  GgufFile g = GgufFile::open((dir / "written.gguf").string());
  EXPECT_EQ(g.tensor("w.f32").shape(), (Shape{2, 64}));
  EXPECT_EQ(g.at("test.strings").as_string_array(), (std::vector<std::string>{"x", "yy", ""}));
  Tensor back = g.tensor("w.q8_0").to_f32();
  std::vector<float> p = pattern(128, 1.0);
  for (int i = 0; i < 128; ++i) EXPECT_NEAR(back.data<float>()[i], p[size_t(i)], 0.01) << i;
}

// safetensors reader/writer: round trips for every dtype, sharding, atomic writes, and corrupt
// files (truncation at every cut, flipped bytes, bad offsets, overlaps) that must fail with an
// mf::Error naming the file and the tensor, never crash.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/half.h"
#include "core/mapped_file.h"
#include "io/safetensors.h"

using namespace mf;
namespace fs = std::filesystem;

namespace {

class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            ("moeforge_st_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  fs::path operator/(const std::string& name) const { return path_ / name; }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

std::string read_bytes(const fs::path& p) { return read_text_file(p.string()); }

// A file from a raw JSON header and data section.
std::string st_bytes(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

Tensor filled(DType t, Shape shape, uint8_t seed) {
  Tensor x = Tensor::empty(t, std::move(shape));
  auto* p = static_cast<uint8_t*>(x.raw());
  for (size_t i = 0; i < x.nbytes(); ++i) p[i] = uint8_t(seed + i * 37);
  if (t == DType::BOOL)
    for (size_t i = 0; i < x.nbytes(); ++i) p[i] &= 1;
  return x;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.nbytes() == b.nbytes() &&
         (a.nbytes() == 0 || std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);  // empty tensors may have no data pointer
}

// Runs f, expecting an mf::Error whose message contains every needle.
template <class F>
void expect_error(F&& f, std::initializer_list<std::string> needles) {
  try {
    f();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    for (const auto& n : needles)
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos)
          << "message '" << e.what() << "' lacks '" << n << "'";
  }
}

}  // namespace

TEST(Safetensors, RoundTripEveryDtype) {
  TempDir dir;
  std::vector<std::pair<std::string, Tensor>> in;
  const DType types[] = {DType::F32, DType::F16, DType::BF16, DType::F64, DType::I8,
                         DType::I16, DType::I32, DType::I64,  DType::U8,  DType::BOOL};
  uint8_t seed = 1;
  for (DType t : types) in.emplace_back(cat("x.", dtype_name(t)), filled(t, {3, 5}, seed++));
  in.emplace_back("z.empty", Tensor::empty(DType::F32, {0, 3}));
  in.emplace_back("a.scalar", filled(DType::F32, {}, 9));
  std::string path = (dir / "m.safetensors").string();
  save_safetensors(path, in, {{"format", "pt"}});

  SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.metadata, (std::map<std::string, std::string>{{"format", "pt"}}));
  ASSERT_EQ(f.tensors.size(), in.size());
  for (const auto& [name, t] : in) EXPECT_TRUE(same_bytes(f.tensors.at(name), t)) << name;
  // Written in the order given.
  std::vector<std::string> order;
  for (const auto& nt : in) order.push_back(nt.first);
  EXPECT_EQ(f.names_in_file_order, order);
  // Data is 8-byte aligned, so views are zero-copy into the mapping.
  const uint8_t* lo = f.file->data();
  const auto* p = static_cast<const uint8_t*>(f.tensors.at("x.F64").raw());
  EXPECT_TRUE(p >= lo && p < lo + f.file->size());
}

TEST(Safetensors, AtomicWriteLeavesNoTempFile) {
  TempDir dir;
  save_safetensors((dir / "a.safetensors").string(), {{"w", filled(DType::F32, {4}, 1)}});
  save_safetensors((dir / "a.safetensors").string(), {{"w", filled(DType::F32, {8}, 2)}});
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir.path())) names.push_back(e.path().filename());
  EXPECT_EQ(names, std::vector<std::string>{"a.safetensors"});
  EXPECT_EQ(load_safetensors((dir / "a.safetensors").string()).at("w").numel(), 8);
  // Failing writes throw and leave nothing behind.
  EXPECT_THROW(save_safetensors((dir / "no_such_dir" / "a.safetensors").string(),
                                {{"w", filled(DType::F32, {4}, 1)}}),
               Error);
  EXPECT_THROW(save_safetensors((dir / "b.safetensors").string(),
                                {{"w", filled(DType::F32, {4}, 1)}, {"w", filled(DType::F32, {4}, 1)}}),
               Error);
  EXPECT_THROW(save_safetensors((dir / "b.safetensors").string(),
                                {{"q", Tensor::zeros(DType::Q4_0, {32})}}),
               Error);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);
}

TEST(Safetensors, ShardedDirectoryRoundTrip) {
  TempDir dir;
  std::vector<std::pair<std::string, Tensor>> in;
  for (int i = 0; i < 7; ++i)
    in.emplace_back(cat("model.layers.", i, ".w"), filled(DType::BF16, {16, 8}, uint8_t(i)));
  save_safetensors_dir((dir / "sharded").string(), in, 600);  // 256 bytes each -> 2 per shard
  EXPECT_TRUE(fs::exists(dir / "sharded" / "model.safetensors.index.json"));
  EXPECT_TRUE(fs::exists(dir / "sharded" / "model-00001-of-00004.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "sharded" / "model-00004-of-00004.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "sharded" / "model.safetensors"));
  auto back = load_safetensors((dir / "sharded").string());
  ASSERT_EQ(back.size(), in.size());
  for (const auto& [name, t] : in) EXPECT_TRUE(same_bytes(back.at(name), t)) << name;

  save_safetensors_dir((dir / "single").string(), in, size_t(1) << 30);
  EXPECT_TRUE(fs::exists(dir / "single" / "model.safetensors"));
  EXPECT_EQ(load_safetensors((dir / "single").string()).size(), in.size());
  expect_error([&] { load_safetensors(dir.path().string()); }, {dir.path().string()});
}

TEST(Safetensors, ShardIndexErrorsNameTheTensor) {
  TempDir dir;
  save_safetensors((dir / "s1.safetensors").string(), {{"a", filled(DType::F32, {2}, 1)}});
  write_bytes(dir / "model.safetensors.index.json",
              R"({"weight_map": {"a": "s1.safetensors", "b": "s1.safetensors"}})");
  expect_error([&] { load_safetensors(dir.path().string()); }, {"'b'", "index.json"});
  write_bytes(dir / "model.safetensors.index.json", R"({"weight_map": {"a": "missing.safetensors"}})");
  expect_error([&] { load_safetensors(dir.path().string()); }, {"missing.safetensors"});
  write_bytes(dir / "model.safetensors.index.json", R"({"weight_map": {"a": "../x"}})");
  expect_error([&] { load_safetensors(dir.path().string()); }, {"'a'", "../x"});
  write_bytes(dir / "model.safetensors.index.json", R"({"nope": 1})");
  expect_error([&] { load_safetensors(dir.path().string()); }, {"weight_map"});
}

TEST(Safetensors, TruncatedAtEveryCutFails) {
  TempDir dir;
  std::string good_path = (dir / "good.safetensors").string();
  save_safetensors(good_path, {{"first.weight", filled(DType::F32, {4, 4}, 1)},
                               {"second.weight", filled(DType::F16, {8}, 2)}});
  std::string good = read_bytes(good_path);
  uint64_t header_len;
  std::memcpy(&header_len, good.data(), 8);
  std::string cut_path = (dir / "cut.safetensors").string();
  for (size_t cut = 0; cut < good.size(); ++cut) {
    SCOPED_TRACE(cut);
    write_bytes(cut_path, good.substr(0, cut));
    if (cut < 8 + header_len) {
      expect_error([&] { SafetensorsFile::open(cut_path); }, {cut_path});
    } else {
      // The header is whole, the data is short: the error names the tensor that is cut.
      std::string cut_tensor = cut < 8 + header_len + 64 ? "'first.weight'" : "'second.weight'";
      expect_error([&] { SafetensorsFile::open(cut_path); }, {cut_path, cut_tensor});
    }
  }
}

TEST(Safetensors, FlippedHeaderBytesNeverCrash) {
  TempDir dir;
  std::string good_path = (dir / "good.safetensors").string();
  save_safetensors(good_path, {{"a", filled(DType::F32, {2, 3}, 1)}, {"b", filled(DType::I64, {3}, 2)}},
                   {{"k", "v"}});
  std::string good = read_bytes(good_path);
  std::string path = (dir / "flip.safetensors").string();
  int errors = 0;
  for (size_t i = 0; i < good.size() && i < 200; ++i) {
    for (uint8_t mask : {uint8_t(0x01), uint8_t(0x10), uint8_t(0x80)}) {
      std::string bad = good;
      bad[i] = char(uint8_t(bad[i]) ^ mask);
      write_bytes(path, bad);
      try {
        SafetensorsFile f = SafetensorsFile::open(path);
        for (const auto& [name, t] : f.tensors) {  // anything accepted must lie inside the file
          const auto* p = static_cast<const uint8_t*>(t.raw());
          if (t.nbytes() && t.owner() == f.file) {
            EXPECT_LE(p + t.nbytes(), f.file->data() + f.file->size());
          }
        }
      } catch (const Error& e) {
        ++errors;
        EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      }
    }
  }
  EXPECT_GT(errors, 100);
}

TEST(Safetensors, CorruptHeadersNameFileAndTensor) {
  TempDir dir;
  std::string p = (dir / "bad.safetensors").string();
  auto check = [&](const std::string& header, const std::string& data,
                   std::initializer_list<std::string> needles) {
    write_bytes(p, st_bytes(header, data));
    expect_error([&] { SafetensorsFile::open(p); }, needles);
  };
  std::string d16(16, '\0');
  check(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", d16, {p, "'w'", "8"});
  check(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,32]}})", d16, {p, "'w'", "past the end"});
  check(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[16,0]}})", d16, {p, "'w'", "reversed"});
  check(R"({"w":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", d16, {p, "'w'", "shape"});
  check(R"({"w":{"dtype":"Q4","shape":[4],"data_offsets":[0,16]}})", d16, {p, "'w'", "Q4"});
  check(R"({"w":{"dtype":"F32","shape":[4]}})", d16, {p, "'w'", "data_offsets"});
  check(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,"16"]}})", d16, {p, "'w'"});
  check(R"({"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}})", d16,
        {p, "'w'", "too many"});
  check(R"({"w":[1,2]})", d16, {p, "'w'"});
  check(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},)"
        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
        d16, {p, "'a'", "'b'", "overlaps"});
  check(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
        R"("a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
        d16, {p, "'a'", "twice"});
  check(R"({"__metadata__":{"x":1}})", "", {p, "__metadata__"});
  check(R"([1,2,3])", "", {p, "JSON object"});
  check(R"({"w": )", "", {p, "JSON"});
  // header length beyond the file, and files too short to hold it
  std::string huge(8, '\xff');
  write_bytes(p, huge + "{}");
  expect_error([&] { SafetensorsFile::open(p); }, {p, "header length"});
  write_bytes(p, "abc");
  expect_error([&] { SafetensorsFile::open(p); }, {p});
  expect_error([&] { SafetensorsFile::open((dir / "missing.safetensors").string()); },
               {"missing.safetensors"});
}

TEST(Safetensors, MisalignedDataIsCopiedNotMisread) {
  TempDir dir;
  std::string p = (dir / "odd.safetensors").string();
  // Header of odd length puts the data section at an odd address.
  std::string header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  if ((8 + header.size()) % 4 == 0) header += " ";
  float v[2] = {1.5f, -2.25f};
  write_bytes(p, st_bytes(header, std::string(reinterpret_cast<const char*>(v), 8)));
  SafetensorsFile f = SafetensorsFile::open(p);
  const Tensor& w = f.tensors.at("w");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(w.raw()) % 4, 0u);
  EXPECT_EQ(w.data<float>()[0], 1.5f);
  EXPECT_EQ(w.data<float>()[1], -2.25f);
}

// core/atomic_file: a file written in pieces appears whole at commit() or not at all, and the
// writers built on it (safetensors, GGUF) produce the same bytes as before they streamed.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <unistd.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/mapped_file.h"

namespace {
namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class AtomicFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("moeforge_atomic_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  size_t entries() const { return size_t(std::distance(fs::directory_iterator(dir_), fs::directory_iterator())); }
  fs::path dir_;
};

TEST_F(AtomicFileTest, PiecesAppearWholeAtCommit) {
  const fs::path p = dir_ / "model.bin";
  mf::write_file_atomic(p.string(), "old", 3);
  {
    mf::AtomicFile f(p.string());
    f.write("ab", 2);
    f.write_zeros(5000);  // more than one block of zeros
    f.write("c", 1);
    EXPECT_EQ(f.size(), 5003u);
    EXPECT_EQ(slurp(p), "old");  // not visible before commit
    f.commit();
    EXPECT_THROW(f.write("x", 1), mf::Error);
  }
  const std::string got = slurp(p);
  ASSERT_EQ(got.size(), 5003u);
  EXPECT_EQ(got.substr(0, 2), "ab");
  EXPECT_EQ(got.substr(2, 5000), std::string(5000, '\0'));
  EXPECT_EQ(got.back(), 'c');
  EXPECT_EQ(entries(), 1u);  // no temporary left
}

TEST_F(AtomicFileTest, AbandonedWriteLeavesTheOldFileAndNoTemporary) {
  const fs::path p = dir_ / "model.bin";
  mf::write_file_atomic(p.string(), "old", 3);
  try {
    mf::AtomicFile f(p.string());
    f.write("half of a new file", 18);
    throw std::runtime_error("the writer failed half-way");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(slurp(p), "old");
  EXPECT_EQ(entries(), 1u);
}

TEST_F(AtomicFileTest, UnwritableDirectoryIsAClearError) {
  try {
    mf::AtomicFile f((dir_ / "missing" / "x.bin").string());
    FAIL() << "no error";
  } catch (const mf::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot create"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("x.bin.tmp."), std::string::npos) << e.what();
  }
}

}  // namespace

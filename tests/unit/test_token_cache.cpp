#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "data/text_corpus.h"
#include "data/token_cache.h"

namespace fs = std::filesystem;

TEST(TokenCache, SecondRunReadsTheShardAndADamagedOneIsReplaced) {
  const fs::path dir = fs::temp_directory_path() / ("moeforge_tokcache_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path src = dir / "a.txt";
  std::ofstream(src) << "hello";
  const std::string key = mf::corpus_cache_key({src.string()}, "char:10");
  int calls = 0;
  auto produce = [&] {
    ++calls;
    return std::vector<int32_t>{5, 6, 7, -1, 1 << 20};
  };
  auto a = mf::load_or_tokenize(dir.string(), key, produce);
  EXPECT_FALSE(a.hit);
  auto b = mf::load_or_tokenize(dir.string(), key, produce);
  EXPECT_TRUE(b.hit);
  EXPECT_EQ(b.tokens, a.tokens);
  EXPECT_EQ(calls, 1);
  // Another tokenizer or changed data: another key.
  EXPECT_NE(mf::corpus_cache_key({src.string()}, "bpe:49152"), key);
  std::ofstream(src, std::ios::app) << " world";
  EXPECT_NE(mf::corpus_cache_key({src.string()}, "char:10"), key);
  // Flip a byte of the shard: it is not trusted.
  {
    std::fstream f(b.path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(20);
    f.put('\x7f');
  }
  auto c = mf::load_or_tokenize(dir.string(), key, produce);
  EXPECT_FALSE(c.hit);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(c.tokens, a.tokens);
  fs::remove_all(dir);
}

// A binary file named as text (a model, an archive) is refused instead of trained on.
TEST(TextCorpus, BinaryFileIsNotText) {
  const std::string path = ::testing::TempDir() + "/not_really.txt";
  std::ofstream(path, std::ios::binary) << std::string("GGUF\0\3\0\0\0", 8) << "rest";
  try {
    mf::read_text_documents({path});
    ADD_FAILURE() << "accepted";
  } catch (const mf::Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find("binary"), std::string::npos) << what;
  }
  const std::string ok = ::testing::TempDir() + "/really.txt";
  std::ofstream(ok) << "plain text\n";
  EXPECT_EQ(mf::read_text_documents({ok}).size(), 1u);
}

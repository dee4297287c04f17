#include "data/token_cache.h"

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/mapped_file.h"

namespace mf {

namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'M', 'F', 'T', 'O', 'K', '1', 0, 0};

uint64_t fnv1a(const void* data, size_t n, uint64_t h = 0xcbf29ce484222325ull) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

}  // namespace

std::string corpus_cache_key(const std::vector<std::string>& files, const std::string& tokenizer_fingerprint) {
  std::string desc = tokenizer_fingerprint;
  for (const std::string& f : files) {
    const fs::path p = fs::absolute(f);
    desc += '|';
    desc += p.string();
    desc += ':';
    std::error_code size_error, time_error;
    const auto size = fs::file_size(p, size_error);
    const auto time = fs::last_write_time(p, time_error);
    MF_CHECK(!size_error && !time_error, f, ": cannot read as a file (", (size_error ? size_error : time_error).message(),
             ")");
    desc += std::to_string(size);
    desc += ':';
    desc += std::to_string(time.time_since_epoch().count());
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", (unsigned long long)fnv1a(desc.data(), desc.size()));
  return hex;
}

std::string default_token_cache_dir() {
  if (const char* c = std::getenv("MOEFORGE_CACHE")) return (fs::path(c) / "tokens").string();
  const char* home = std::getenv("HOME");
  return (fs::path(home ? home : ".") / ".cache" / "moeforge" / "tokens").string();
}

CachedTokens load_or_tokenize(const std::string& cache_dir, const std::string& key,
                              const std::function<std::vector<int32_t>()>& produce) {
  CachedTokens out;
  out.path = (fs::path(cache_dir) / (key + ".tokens")).string();
  if (fs::exists(out.path)) {
    std::ifstream in(out.path, std::ios::binary);
    char magic[8];
    uint64_t count = 0, checksum = 0;
    const auto size = fs::file_size(out.path);
    if (in.read(magic, 8) && std::memcmp(magic, kMagic, 8) == 0 && in.read(reinterpret_cast<char*>(&count), 8) &&
        size == 8 + 8 + count * 4 + 8) {
      out.tokens.resize(count);
      if (in.read(reinterpret_cast<char*>(out.tokens.data()), std::streamsize(count * 4)) &&
          in.read(reinterpret_cast<char*>(&checksum), 8) &&
          checksum == fnv1a(out.tokens.data(), out.tokens.size() * 4)) {
        out.hit = true;
        return out;
      }
    }
    out.tokens.clear();  // damaged: tokenize again and replace it
  }
  out.tokens = produce();
  const uint64_t count = out.tokens.size(), checksum = fnv1a(out.tokens.data(), out.tokens.size() * 4);
  std::vector<char> bytes(8 + 8 + count * 4 + 8);
  std::memcpy(bytes.data(), kMagic, 8);
  std::memcpy(bytes.data() + 8, &count, 8);
  std::memcpy(bytes.data() + 16, out.tokens.data(), count * 4);
  std::memcpy(bytes.data() + 16 + count * 4, &checksum, 8);
  fs::create_directories(cache_dir);
  write_file_atomic(out.path, bytes.data(), bytes.size());
  return out;
}

}  // namespace mf

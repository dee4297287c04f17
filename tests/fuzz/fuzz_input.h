// What every fuzz harness shares: the parsers under test read files, so each input is written to
// a file of this process's own temporary directory first. A harness calls the reader and accepts
// only mf::Error (a clear refusal); any other exception, a crash, a sanitizer report or a hang is
// a finding.
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

namespace mf::fuzz {

// The directory this process writes its inputs into: created on first use, removed at exit.
class ScratchDir {
 public:
  ScratchDir()
      : path_(std::filesystem::temp_directory_path() / ("moeforge-fuzz-" + std::to_string(::getpid()))) {
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline const std::filesystem::path& scratch_dir() {
  static const ScratchDir dir;
  return dir.path();
}

// `bytes` as the file `name` in the scratch directory; its path.
inline std::string write_input(const uint8_t* data, size_t size, const std::string& name) {
  const std::filesystem::path p = scratch_dir() / name;
  std::ofstream(p, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), std::streamsize(size));
  return p.string();
}

}  // namespace mf::fuzz

// Read-only memory mapping of a whole file (RAII). Weights are read from it without copies.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace mf {

class MappedFile {
 public:
  // Throws mf::Error naming the path if it cannot be opened or mapped.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Writes `bytes` to `path` atomically (core/atomic_file.h: a temporary file in the same
// directory, fsync, rename).
void write_file_atomic(const std::string& path, const void* bytes, size_t size);
std::string read_text_file(const std::string& path);

}  // namespace mf

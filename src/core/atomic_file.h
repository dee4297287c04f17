// A file written in pieces and published atomically. Bytes go to PATH.tmp.PID in the same
// directory; commit() flushes them to disk and renames the temporary over PATH; an AtomicFile
// destroyed before commit() (an error, an exception) removes its temporary. So a reader sees the
// old file or the whole new one, never a half-written one, and a writer never needs the whole
// file in memory: a model's tensors are written one after another straight from where they are.
#pragma once
#include <cstddef>
#include <string>

namespace mf {

class AtomicFile {
 public:
  // Throws mf::Error naming the temporary file if it cannot be created.
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Appends; throws mf::Error naming the file (disk full, I/O error).
  void write(const void* bytes, size_t size);
  void write_zeros(size_t count);
  // Bytes written so far.
  size_t size() const { return written_; }
  // fsync, close, rename over the final path. Throws mf::Error naming the file on failure.
  void commit();

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  size_t written_ = 0;
};

}  // namespace mf

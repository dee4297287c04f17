#include "core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace mf {

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)), tmp_(path_ + ".tmp." + std::to_string(::getpid())) {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  MF_CHECK(fd_ >= 0, "cannot create ", tmp_, ": ", std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (fd_ < 0) return;  // committed
  ::close(fd_);
  ::unlink(tmp_.c_str());
}

void AtomicFile::write(const void* bytes, size_t size) {
  MF_CHECK(fd_ >= 0, "cannot write ", path_, ": already committed");
  const char* p = static_cast<const char*>(bytes);
  size_t left = size;
  while (left > 0) {
    const ssize_t n = ::write(fd_, p, left);
    if (n < 0 && errno == EINTR) continue;
    MF_CHECK(n > 0, "cannot write ", tmp_, ": ", std::strerror(n < 0 ? errno : EIO));
    p += n;
    left -= size_t(n);
  }
  written_ += size;
}

void AtomicFile::write_zeros(size_t count) {
  static constexpr char kZeros[4096] = {};
  while (count > 0) {
    const size_t n = count < sizeof kZeros ? count : sizeof kZeros;
    write(kZeros, n);
    count -= n;
  }
}

void AtomicFile::commit() {
  MF_CHECK(fd_ >= 0, "cannot commit ", path_, ": already committed");
  const int fd = fd_;
  fd_ = -1;  // from here on the destructor leaves the file alone; failures below clean up
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp_.c_str());
    fail("cannot flush ", tmp_, ": ", std::strerror(err));
  }
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp_.c_str());
    fail("cannot rename ", tmp_, " to ", path_, ": ", std::strerror(err));
  }
}

}  // namespace mf

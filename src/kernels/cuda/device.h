// CUDA runtime access for moeforge: device discovery, checked calls that name the failing op,
// and RAII device buffers. Nothing here runs without a GPU; callers ask `cuda_device_count()`.
#pragma once
#include <cstddef>
#include <string>

namespace mf::cuda {

// Number of usable devices; 0 when there is no driver or no GPU (never throws).
int device_count();
// Human-readable "name, memory, compute capability" of a device.
std::string device_description(int device);
// Throws mf::Error("<op>: <cuda error text>") when `status` is not cudaSuccess.
void check(int status, const char* op);

// Device memory owned by one object; moving transfers ownership.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);  // throws with requested and free bytes on OOM
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* get() const { return ptr_; }
  template <class T> T* as() const { return static_cast<T*>(ptr_); }
  size_t bytes() const { return bytes_; }
  void upload(const void* host, size_t bytes);
  void download(void* host, size_t bytes) const;

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace mf::cuda

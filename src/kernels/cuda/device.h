// CUDA runtime access for moeforge: device discovery, checked calls that name the failing op,
// RAII device buffers, an arena for per-step memory (no cudaMalloc inside a step loop) and
// streams. Nothing here touches a GPU unless asked; `device_count()` never throws.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace mf::cuda {

using bf16 = __nv_bfloat16;

// Number of usable devices; 0 when there is no driver or no GPU (never throws).
int device_count();
// Throws mf::Error saying why no CUDA device can be used (no driver, no GPU, bad index), so a
// `--device cuda` run stops with a message instead of failing in the first kernel.
void require_device(int device = 0);
// Human-readable "name, memory, compute capability" of a device.
std::string device_description(int device);
struct MemoryInfo {
  size_t free_bytes = 0, total_bytes = 0;
};
MemoryInfo memory_info();
// Throws mf::Error("<op>: <cuda error text>") when `status` is not cudaSuccess.
void check(int status, const char* op);

// Device memory owned by one object; moving transfers ownership.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes, const char* what = "device buffer");  // OOM: asked and free bytes
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
  void zero();

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// One device allocation handed out by bumping an offset (256-byte aligned). A training step
// marks the arena, takes its activations and scratch, and rewinds: memory is reserved once at
// start-up and the step loop never calls cudaMalloc. Running out is an mf::Error naming the
// request, what is used and the capacity (the fix is a larger arena or a smaller batch).
class DeviceArena {
 public:
  DeviceArena() = default;
  DeviceArena(size_t capacity_bytes, std::string name);
  DeviceArena(DeviceArena&&) noexcept = default;
  DeviceArena& operator=(DeviceArena&&) noexcept = default;

  void* allocate(size_t bytes, const char* what);
  template <class T> T* alloc(size_t count, const char* what) {
    return static_cast<T*>(allocate(count * sizeof(T), what));
  }
  size_t mark() const { return used_; }
  void rewind(size_t mark);
  void reset() { rewind(0); }
  size_t used() const { return used_; }
  size_t high_water() const { return high_water_; }
  size_t capacity() const { return block_.bytes(); }

 private:
  DeviceBuffer block_;
  std::string name_;
  size_t used_ = 0;
  size_t high_water_ = 0;
};

// Rewinds an arena to where it was at construction, whatever way the scope is left: a call's
// activations are taken after the mark and given back at its end.
class ArenaRewind {
 public:
  explicit ArenaRewind(DeviceArena& arena) : arena_(arena), mark_(arena.mark()) {}
  ~ArenaRewind() { arena_.rewind(mark_); }
  ArenaRewind(const ArenaRewind&) = delete;
  ArenaRewind& operator=(const ArenaRewind&) = delete;

 private:
  DeviceArena& arena_;
  size_t mark_;
};

// A CUDA stream owned by one object (non-blocking with respect to the legacy default stream).
class Stream {
 public:
  Stream();
  ~Stream();
  Stream(Stream&& other) noexcept;
  Stream& operator=(Stream&& other) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return stream_; }
  // Waits for the stream; an asynchronous fault of any op queued on it surfaces here, named `op`.
  void synchronize(const char* op = "stream synchronize") const;

 private:
  cudaStream_t stream_ = nullptr;
};

// Host <-> device copies with conversion (fp32 on the host; bf16 or fp32 on the device). Used
// at load and by tests; synchronous on the default stream.
DeviceBuffer upload_f32(std::span<const float> host);
DeviceBuffer upload_bf16(std::span<const float> host);  // rounded to nearest even
std::vector<float> download_f32(const float* device, size_t count);
std::vector<float> download_bf16(const bf16* device, size_t count);
// fp32 -> bf16 rounding on the host, bit-identical to __float2bfloat16_rn.
uint16_t bf16_bits_from_float(float x);
float float_from_bf16_bits(uint16_t bits);

}  // namespace mf::cuda

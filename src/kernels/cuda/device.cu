// Host-side wrappers of the CUDA runtime (no kernels). Uploads, downloads and zeroing synchronise
// the whole device, because moeforge's non-blocking streams are not ordered against the legacy
// stream these copies use; they are meant for setup and tests, not for the step loop.
#include <cuda_runtime.h>

#include <cstring>
#include <utility>

#include "core/error.h"
#include "kernels/cuda/device.h"

namespace mf::cuda {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error so later queries start clean
    return 0;
  }
  return n;
}

void require_device(int device) {
  int n = 0;
  cudaError_t status = cudaGetDeviceCount(&n);
  if (status != cudaSuccess) {
    cudaGetLastError();
    fail("no usable CUDA device: ", cudaGetErrorString(status), " (use --device cpu)");
  }
  MF_CHECK(n > 0, "no CUDA device on this machine (use --device cpu)");
  MF_CHECK(device >= 0 && device < n, "CUDA device ", device, " asked for, but this machine has ", n);
  check(cudaSetDevice(device), "cudaSetDevice");
}

std::string device_description(int device) {
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  return cat(prop.name, ", ", prop.totalGlobalMem / (1 << 20), " MiB, sm_", prop.major, prop.minor);
}

MemoryInfo memory_info() {
  MemoryInfo info;
  check(cudaMemGetInfo(&info.free_bytes, &info.total_bytes), "cudaMemGetInfo");
  return info;
}

void check(int status, const char* op) {
  if (status != cudaSuccess) fail(op, ": ", cudaGetErrorString(static_cast<cudaError_t>(status)));
}

DeviceBuffer::DeviceBuffer(size_t bytes, const char* what) : bytes_(bytes) {
  if (bytes == 0) return;
  cudaError_t status = cudaMalloc(&ptr_, bytes);
  if (status != cudaSuccess) {
    cudaGetLastError();
    size_t free_bytes = 0, total = 0;
    cudaMemGetInfo(&free_bytes, &total);
    ptr_ = nullptr;
    fail("out of GPU memory: ", what, " asked for ", bytes >> 20, " MiB (", bytes, " bytes); ", free_bytes >> 20,
         " MiB of ", total >> 20, " MiB free (", cudaGetErrorString(status), ")");
  }
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_) cudaFree(ptr_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : ptr_(std::exchange(other.ptr_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = std::exchange(other.ptr_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void DeviceBuffer::upload(const void* host, size_t bytes) {
  MF_CHECK(bytes <= bytes_, "upload of ", bytes, " bytes into a buffer of ", bytes_);
  if (bytes) check(cudaMemcpy(ptr_, host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy(host->device)");
  // A pageable copy may return before its DMA lands, and moeforge's streams do not wait for the
  // legacy stream: finish here so that any later kernel sees the data.
  check(cudaDeviceSynchronize(), "upload");
}

void DeviceBuffer::download(void* host, size_t bytes) const {
  MF_CHECK(bytes <= bytes_, "download of ", bytes, " bytes from a buffer of ", bytes_);
  check(cudaDeviceSynchronize(), "download");
  if (bytes) check(cudaMemcpy(host, ptr_, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy(device->host)");
}

void DeviceBuffer::zero() {
  if (bytes_) check(cudaMemset(ptr_, 0, bytes_), "cudaMemset");
  check(cudaDeviceSynchronize(), "zero");  // as upload: visible to every stream afterwards
}

DeviceArena::DeviceArena(size_t capacity_bytes, std::string name)
    : block_(capacity_bytes, name.c_str()), name_(std::move(name)) {}

void* DeviceArena::allocate(size_t bytes, const char* what) {
  constexpr size_t kAlign = 256;
  const size_t start = (used_ + kAlign - 1) / kAlign * kAlign;
  if (start + bytes > block_.bytes())
    fail("GPU arena '", name_, "' is full: ", what, " asked for ", bytes, " bytes with ", used_, " of ",
         block_.bytes(), " in use (reserve more or lower the batch)");
  used_ = start + bytes;
  if (used_ > high_water_) high_water_ = used_;
  return static_cast<char*>(block_.get()) + start;
}

void DeviceArena::rewind(size_t mark) {
  MF_CHECK(mark <= used_, "arena '", name_, "' rewound to ", mark, " past its use ", used_);
  used_ = mark;
}

Stream::Stream() { check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate"); }
Stream::~Stream() {
  if (stream_) cudaStreamDestroy(stream_);
}
Stream::Stream(Stream&& other) noexcept : stream_(std::exchange(other.stream_, nullptr)) {}
Stream& Stream::operator=(Stream&& other) noexcept {
  if (this != &other) {
    if (stream_) cudaStreamDestroy(stream_);
    stream_ = std::exchange(other.stream_, nullptr);
  }
  return *this;
}
void Stream::synchronize(const char* op) const { check(cudaStreamSynchronize(stream_), op); }

uint16_t bf16_bits_from_float(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu)) return uint16_t((bits >> 16) | 0x40);  // quiet NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest, ties to even
  return uint16_t(bits >> 16);
}

float float_from_bf16_bits(uint16_t bits) {
  const uint32_t wide = uint32_t(bits) << 16;
  float x;
  std::memcpy(&x, &wide, 4);
  return x;
}

DeviceBuffer upload_f32(std::span<const float> host) {
  DeviceBuffer buffer(host.size_bytes(), "upload");
  buffer.upload(host.data(), host.size_bytes());
  return buffer;
}

DeviceBuffer upload_bf16(std::span<const float> host) {
  std::vector<uint16_t> bits(host.size());
  for (size_t i = 0; i < host.size(); ++i) bits[i] = bf16_bits_from_float(host[i]);
  DeviceBuffer buffer(bits.size() * 2, "upload");
  buffer.upload(bits.data(), bits.size() * 2);
  return buffer;
}

std::vector<float> download_f32(const float* device, size_t count) {
  std::vector<float> host(count);
  check(cudaDeviceSynchronize(), "download");  // work queued on other streams finishes first
  if (count) check(cudaMemcpy(host.data(), device, count * 4, cudaMemcpyDeviceToHost), "cudaMemcpy(device->host)");
  return host;
}

std::vector<float> download_bf16(const bf16* device, size_t count) {
  std::vector<uint16_t> bits(count);
  check(cudaDeviceSynchronize(), "download");
  if (count) check(cudaMemcpy(bits.data(), device, count * 2, cudaMemcpyDeviceToHost), "cudaMemcpy(device->host)");
  std::vector<float> host(count);
  for (size_t i = 0; i < count; ++i) host[i] = float_from_bf16_bits(bits[i]);
  return host;
}

}  // namespace mf::cuda

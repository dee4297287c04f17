#include <cuda_runtime.h>

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

std::string device_description(int device) {
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  return cat(prop.name, ", ", prop.totalGlobalMem / (1 << 20), " MiB, sm_", prop.major, prop.minor);
}

void check(int status, const char* op) {
  if (status != cudaSuccess)
    fail(op, ": ", cudaGetErrorString(static_cast<cudaError_t>(status)));
}

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  cudaError_t status = cudaMalloc(&ptr_, bytes);
  if (status != cudaSuccess) {
    size_t free_bytes = 0, total = 0;
    cudaMemGetInfo(&free_bytes, &total);
    ptr_ = nullptr;
    fail("cudaMalloc of ", bytes, " bytes failed (", cudaGetErrorString(status), "); ", free_bytes,
         " of ", total, " bytes free");
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
  check(cudaMemcpy(ptr_, host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy(host->device)");
}

void DeviceBuffer::download(void* host, size_t bytes) const {
  MF_CHECK(bytes <= bytes_, "download of ", bytes, " bytes from a buffer of ", bytes_);
  check(cudaMemcpy(host, ptr_, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy(device->host)");
}

}  // namespace mf::cuda

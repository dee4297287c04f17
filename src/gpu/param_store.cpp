#include "gpu/param_store.h"

#include <cuda_runtime_api.h>

#include <set>

#include "core/error.h"
#include "model/tensor_names.h"

namespace mf::gpu {

namespace {

std::vector<float> host_f32(const Tensor& t) {
  const Tensor f = t.dtype() == DType::F32 ? t : t.to_f32();
  const float* p = f.data<float>();
  return std::vector<float>(p, p + f.numel());
}

void upload_bf16_values(const std::vector<float>& values, bf16* device) {
  std::vector<uint16_t> bits(values.size());
  for (size_t i = 0; i < values.size(); ++i) bits[i] = cuda::bf16_bits_from_float(values[i]);
  cuda::check(cudaMemcpy(device, bits.data(), bits.size() * 2, cudaMemcpyHostToDevice), "upload weights (bf16)");
  cuda::check(cudaDeviceSynchronize(), "upload weights (bf16)");
}

}  // namespace

// Synchronous with respect to every stream: kernels queued on the model's non-blocking stream
// finish before a download, and an upload has landed before any later kernel reads it.
void download(const float* device, std::span<float> host) {
  cuda::check(cudaDeviceSynchronize(), "download (fp32)");
  if (!host.empty())
    cuda::check(cudaMemcpy(host.data(), device, host.size_bytes(), cudaMemcpyDeviceToHost), "download (fp32)");
}

void upload(std::span<const float> host, float* device) {
  if (!host.empty())
    cuda::check(cudaMemcpy(device, host.data(), host.size_bytes(), cudaMemcpyHostToDevice), "upload (fp32)");
  cuda::check(cudaDeviceSynchronize(), "upload (fp32)");
}

ParamStore::ParamStore(const ModelWeights& weights, const std::function<bool(const std::string&)>& frozen,
                       const std::vector<std::string>& order) {
  std::vector<std::string> names;
  std::set<std::string> placed;
  for (const std::string& n : order)
    if (weights.tensors.count(n) && placed.insert(n).second) names.push_back(n);
  for (const auto& [n, t] : weights.tensors)
    if (placed.insert(n).second) names.push_back(n);

  // Sizes first, then one allocation per region.
  int64_t frozen_bf16 = 0, frozen_f32 = 0;
  for (const std::string& n : names) {
    const Tensor& t = weights.tensors.at(n);
    DeviceTensor d;
    d.name = n;
    d.shape = t.shape();
    d.numel = t.numel();
    // Selection biases are buffers moved by the balancing rule, never by gradients.
    d.trainable = is_trainable(n, frozen);
    if (d.trainable) {
      d.offset = trainable_count_;
      trainable_count_ += d.numel;
    } else {
      d.offset = frozen_bf16;
      frozen_bf16 += d.numel;
      if (d.shape.size() < 2) frozen_f32 += d.numel;
    }
    tensors_.emplace(n, std::move(d));
  }
  const size_t P = size_t(trainable_count_);
  master_ = cuda::DeviceBuffer(P * 4, "master weights (fp32)");
  grads_ = cuda::DeviceBuffer(P * 4, "gradients (fp32)");
  exp_avg_ = cuda::DeviceBuffer(P * 4, "AdamW first moments");
  exp_avg_sq_ = cuda::DeviceBuffer(P * 4, "AdamW second moments");
  compute_ = cuda::DeviceBuffer(P * 2, "trainable weights (bf16)");
  frozen_bf16_ = cuda::DeviceBuffer(size_t(frozen_bf16) * 2, "frozen weights (bf16)");
  frozen_f32_ = cuda::DeviceBuffer(size_t(frozen_f32) * 4, "frozen norms (fp32)");
  grads_.zero();
  exp_avg_.zero();
  exp_avg_sq_.zero();

  int64_t f32_cursor = 0;
  for (const std::string& n : names) {
    DeviceTensor& d = tensors_.at(n);
    const std::vector<float> values = host_f32(weights.tensors.at(n));
    if (d.trainable) {
      d.f32 = master() + d.offset;
      d.grad = grads() + d.offset;
      d.compute = compute() + d.offset;
      upload(values, d.f32);
      trainable_.push_back(&d);
    } else {
      d.compute = frozen_bf16_.as<bf16>() + d.offset;
      if (d.shape.size() < 2) {
        d.f32 = frozen_f32_.as<float>() + f32_cursor;
        f32_cursor += d.numel;
        upload(values, d.f32);
      }
    }
    upload_bf16_values(values, d.compute);
  }
}

const DeviceTensor& ParamStore::at(const std::string& name) const {
  auto it = tensors_.find(name);
  MF_CHECK(it != tensors_.end(), "GPU model: no tensor '", name, "'");
  return it->second;
}

const DeviceTensor* ParamStore::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

size_t ParamStore::device_bytes() const {
  return master_.bytes() + grads_.bytes() + exp_avg_.bytes() + exp_avg_sq_.bytes() + compute_.bytes() +
         frozen_bf16_.bytes() + frozen_f32_.bytes();
}

}  // namespace mf::gpu

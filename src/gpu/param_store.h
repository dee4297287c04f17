// Every tensor of a model on the GPU, laid out for mixed-precision training: trainable tensors
// live in parallel contiguous buffers (fp32 master, fp32 gradient, both Adam moments, and the
// bf16 copy the GEMMs read), frozen ones as bf16 (plus fp32 when 1-D: norms, biases, buffers).
// One contiguous trainable region lets AdamW, clipping and zeroing run as single launches.
// The layout follows a caller-given order, so a layer's gate and up projections sit side by
// side and run as one GEMM over a [2I, H] matrix.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/cuda/device.h"
#include "model/weights.h"

namespace mf::gpu {

using cuda::bf16;

struct DeviceTensor {
  std::string name;
  Shape shape;
  int64_t numel = 0;
  bool trainable = false;
  int64_t offset = 0;       // element offset in the trainable region (trainable tensors only)
  bf16* compute = nullptr;  // bf16 values: what GEMMs, embeddings and the head read
  float* f32 = nullptr;     // fp32 values: the master copy (trainable) or the frozen 1-D values
  float* grad = nullptr;    // fp32 gradient (trainable only)
};

class ParamStore {
 public:
  // Uploads every tensor of `weights` (any stored dtype, dequantized on the host), in `order`
  // first and then the rest by name. Throws mf::Error naming a tensor the GPU cannot hold.
  ParamStore(const ModelWeights& weights, const std::function<bool(const std::string&)>& frozen,
             const std::vector<std::string>& order);

  const DeviceTensor& at(const std::string& name) const;  // throws naming the missing tensor
  const DeviceTensor* find(const std::string& name) const;
  // Trainable tensors in layout order.
  const std::vector<const DeviceTensor*>& trainable() const { return trainable_; }
  int64_t trainable_count() const { return trainable_count_; }

  float* master() const { return master_.as<float>(); }
  float* grads() const { return grads_.as<float>(); }
  float* exp_avg() const { return exp_avg_.as<float>(); }
  float* exp_avg_sq() const { return exp_avg_sq_.as<float>(); }
  bf16* compute() const { return compute_.as<bf16>(); }
  size_t device_bytes() const;

 private:
  std::map<std::string, DeviceTensor> tensors_;
  std::vector<const DeviceTensor*> trainable_;
  int64_t trainable_count_ = 0;
  cuda::DeviceBuffer master_, grads_, exp_avg_, exp_avg_sq_, compute_;  // trainable region
  cuda::DeviceBuffer frozen_bf16_, frozen_f32_;
};

// Host <-> device copies of fp32 ranges (synchronous): checkpoints and exports stage through them.
void download(const float* device, std::span<float> host);
void upload(std::span<const float> host, float* device);

}  // namespace mf::gpu

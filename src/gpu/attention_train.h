// Training forward and backward of one attention block on the GPU (twin of
// model/attention_train.h): x_mid = x_in + o_proj(attention(rope(q, k, v of rmsnorm(x_in)))),
// bf16 activations with the fp32 residual stream. Inference's cached attention stays in
// gpu/cuda_inference.cpp.
#pragma once
#include "gpu/device_step.h"
#include "gpu/layer_binding.h"
#include "kernels/cuda/attention.h"
#include "model/config.h"

namespace mf::gpu {

// The attention kernels' shape of a training call.
cuda::AttentionShape attention_shape(const ModelConfig& c, const DeviceSequenceBatch& sb);

// What the forward keeps for the backward (arena memory of the current call).
struct AttentionSaved {
  const float* x_in = nullptr;
  float *rstd = nullptr, *lse = nullptr;
  bf16 *h = nullptr, *q = nullptr, *k = nullptr, *v = nullptr, *attn = nullptr;
};

// Writes x_mid [N, H] (fp32; may not alias x_in).
void attention_train_forward(DeviceStep& d, const ModelConfig& c, const GpuLayer& L, const DeviceSequenceBatch& sb,
                             const float* x_in, float* x_mid, AttentionSaved& S);

// Scratch of the attention backward, taken once per step and shared by every layer.
struct AttentionBackwardScratch {
  bf16 *dq = nullptr, *dk = nullptr, *dv = nullptr, *dattn = nullptr;
  float* attention = nullptr;
  void* bias = nullptr;
};
AttentionBackwardScratch alloc_attention_backward(cuda::DeviceArena& arena, const ModelConfig& c,
                                                  const DeviceSequenceBatch& sb);

// b.dx holds d x_mid on entry and d x_in on return; weight gradients accumulate into the
// layer's gradient buffers (those that train).
void attention_train_backward(DeviceStep& d, const ModelConfig& c, const GpuLayer& L, const DeviceSequenceBatch& sb,
                              const AttentionSaved& S, const BackwardBuffers& b, const AttentionBackwardScratch& s);

}  // namespace mf::gpu

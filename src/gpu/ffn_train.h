// Training forward and backward of one FFN block on the GPU (twin of model/ffn_train.h):
// x_out = x_mid + ffn(rmsnorm(x_mid)), ffn being the layer's SwiGLU MLP (gpu/swiglu) or its MoE
// FFN (gpu/moe_ffn).
#pragma once
#include "gpu/device_step.h"
#include "gpu/layer_binding.h"
#include "gpu/moe_ffn.h"
#include "gpu/swiglu.h"
#include "model/config.h"

namespace mf::gpu {

struct FfnSaved {
  const float* x_mid = nullptr;
  float* rstd = nullptr;
  bf16* h = nullptr;  // rmsnorm(x_mid) [N, H]
  SwigluSaved mlp;    // dense layers
  MoeSaved moe;       // MoE layers
};

// Writes x_out [N, H] (fp32; may not alias x_mid).
void ffn_train_forward(DeviceStep& d, const ModelConfig& c, const GpuLayer& L, int64_t N, const MoeFfnPass& pass,
                       const float* x_mid, float* x_out, FfnSaved& S);

// b.dx holds d x_out on entry and d x_mid on return. Scratch comes from the arena.
void ffn_train_backward(DeviceStep& d, const ModelConfig& c, const GpuLayer& L, int64_t N, const MoeFfnPass& pass,
                        const MoeLossCoefs& coefs, const FfnSaved& S, const BackwardBuffers& b);

}  // namespace mf::gpu

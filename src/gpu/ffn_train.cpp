#include "gpu/ffn_train.h"

#include "kernels/cuda/adamw.h"
#include "kernels/cuda/norm.h"

namespace mf::gpu {

void ffn_train_forward(DeviceStep& d, const ModelConfig& c, const GpuLayer& L, int64_t N, const MoeFfnPass& pass,
                       const float* x_mid, float* x_out, FfnSaved& S) {
  const int64_t H = c.hidden_size;
  const size_t NH = size_t(N * H);
  S.x_mid = x_mid;
  S.rstd = d.arena.alloc<float>(size_t(N), "rstd");
  S.h = d.arena.alloc<bf16>(NH, "FFN input");
  cuda::rmsnorm(x_mid, L.ffn_norm->f32, N, H, c.rms_norm_eps, S.h, S.rstd, d.s());
  copy_device(x_out, x_mid, NH * 4, d.s());
  if (L.moe)
    moe_ffn_forward(d, c, L, S.h, N, pass, x_out, S.moe);
  else
    swiglu_forward(d, L.mlp, S.h, N, H, S.mlp, x_out, OutType::f32, 1.0f);
}

void ffn_train_backward(DeviceStep& d, const ModelConfig& c, const GpuLayer& L, int64_t N, const MoeFfnPass& pass,
                        const MoeLossCoefs& coefs, const FfnSaved& S, const BackwardBuffers& b) {
  const int64_t H = c.hidden_size;
  if (L.moe) {
    moe_ffn_backward(d, c, L, S.h, N, pass, coefs, S.moe, b.dx, b.dh);
    cuda::convert_f32_to_bf16(b.dh, b.dhb, N * H, d.s());
  } else {
    cuda::convert_f32_to_bf16(b.dx, b.dxb, N * H, d.s());
    swiglu_backward(d, L.mlp, S.h, N, H, S.mlp, b.dxb, b.dhb, OutType::bf16, 0.0f);
  }
  cuda::rmsnorm_backward(b.dhb, S.x_mid, L.ffn_norm->f32, S.rstd, N, H, b.dx, L.ffn_norm->grad, b.norm_scratch,
                         d.s());
}

}  // namespace mf::gpu

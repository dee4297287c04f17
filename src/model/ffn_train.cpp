#include "model/ffn_train.h"

#include "kernels/cpu/activation.h"
#include "kernels/cpu/norm.h"
#include "moe/router_noise.h"

namespace mf {
namespace {

template <class T>
T* sized(std::vector<T>& v, int64_t n) {
  v.resize(static_cast<size_t>(n));
  return v.data();
}

}  // namespace

MoeAuxLosses ffn_train_forward(const ModelConfig& c, const LayerWeights& L, int layer, const SequenceBatch& sb,
                               const FfnPass& pass, float* x, FfnActs& A, FfnScratch& s) {
  const int64_t N = sb.rows(), H = c.hidden_size;
  A.x_mid.assign(x, x + N * H);
  float* h2 = sized(A.h2, N * H);
  rmsnorm(x, L.ffn_norm.data<float>(), N, H, c.rms_norm_eps, h2);
  if (!L.is_moe) {
    const int64_t I = L.mlp.gate.dim(0);
    A.mlp.resize(N, I);
    float* out = sized(s.out, N * H);
    swiglu_forward(L.mlp, h2, N, H, A.mlp.a.data(), A.mlp.b.data(), A.mlp.h.data(), out);
    add_inplace(x, out, N * H);
    return {};
  }
  std::span<const float> gaussian;
  if (pass.training && c.routing.policy == RouterPolicy::NoisyTopK) {
    const int64_t NE = N * c.experts_in_layer(layer);
    gaussian = {sized(s.gaussian, NE), size_t(NE)};
    draw_router_noise(pass.noise_seed, layer, {s.gaussian.data(), size_t(NE)});
  }
  moe_ffn_forward(c, L.moe, h2, N, pass.training, gaussian, A.moe, x, /*keep=*/pass.training, pass.experts);
  return moe_aux_losses(A.moe, pass.counted, pass.losses);
}

void ffn_train_backward(const ModelConfig& c, const LayerWeights& L, const FfnGrads& g, const SequenceBatch& sb,
                        const FfnPass& pass, FfnActs& A, float* dx, FfnScratch& s) {
  const int64_t N = sb.rows(), H = c.hidden_size;
  float* dh = sized(s.dh, N * H);
  if (!L.is_moe) {
    const int64_t I = L.mlp.gate.dim(0);
    float* dmid = sized(s.dmid, N * I);
    swiglu_backward(L.mlp, g.mlp, A.h2.data(), N, H, A.mlp.a.data(), A.mlp.b.data(), A.mlp.h.data(), dx, dmid, dh,
                    false);
  } else {
    moe_ffn_backward(c, L.moe, g.moe, A.moe, A.h2.data(), dx, N, pass.counted, pass.losses, s.moe, dh, pass.experts);
  }
  rmsnorm_backward(A.x_mid.data(), L.ffn_norm.data<float>(), dh, N, H, c.rms_norm_eps, dh, g.norm);
  add_inplace(dx, dh, N * H);
}

void ffn_train_router_aux_backward(const ModelConfig& c, const LayerWeights& L, const FfnGrads& g,
                                   const SequenceBatch& sb, const FfnPass& pass, const FfnActs& A, FfnScratch& s) {
  if (!L.is_moe) return;
  moe_router_aux_backward(g.moe, A.moe, A.h2.data(), sb.rows(), c.hidden_size, pass.counted, pass.losses, s.moe);
}

}  // namespace mf

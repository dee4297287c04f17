#include "kernels/cpu/activation.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/norm.h"
#include "model/blocks.h"
#include "model/moe_ffn.h"
#include "model/swiglu.h"

namespace mf {

void ffn_block(const ModelConfig& c, const LayerWeights& L, Workspace& ws, std::vector<Tensor>* router_logits,
               std::vector<Tensor>* ffn_inputs) {
  const int64_t N = ws.tokens, H = c.hidden_size;
  rmsnorm(ws.x.data(), L.ffn_norm.data<float>(), N, H, c.rms_norm_eps, ws.h.data());
  if (ffn_inputs) ffn_inputs->push_back(Tensor::from_f32({N, H}, {ws.h.data(), size_t(N * H)}));
  if (L.is_moe) {
    // The training forward without its saved activations: no noise, the evaluation capacity.
    moe_ffn_forward(c, L.moe, ws.h.data(), N, false, {}, ws.moe, ws.x.data(), /*keep=*/false);
    if (router_logits) {
      const int64_t E = L.moe.num_experts();
      router_logits->push_back(Tensor::from_f32({N, E}, {ws.moe.logits.data(), size_t(N * E)}));
    }
    return;
  }
  swiglu_forward(L.mlp, ws.h.data(), N, H, ws.ffn_a.data(), ws.ffn_b.data(), ws.ffn_a.data(), ws.out.data());
  add_inplace(ws.x.data(), ws.out.data(), N * H);
}

}  // namespace mf

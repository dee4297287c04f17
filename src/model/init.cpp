#include "model/init.h"

#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "model/tensor_names.h"

namespace mf {

ModelWeights init_random_weights(const ModelConfig& c, uint64_t seed, float std) {
  c.validate();
  ModelWeights w;
  w.config = c;
  w.source = "random init (seed " + std::to_string(seed) + ")";
  Rng rng(seed);
  const int64_t H = c.hidden_size, D = c.effective_head_dim();
  const float residual_std = std / std::sqrt(2.0f * float(c.num_layers));
  auto matrix = [&](const std::string& name, int64_t rows, int64_t cols, float s) {
    std::vector<float> v(size_t(rows * cols));
    for (float& x : v) x = rng.normal() * s;
    w.tensors[name] = Tensor::from_f32({rows, cols}, v);
  };
  auto filled = [&](const std::string& name, int64_t n, float value) {
    w.tensors[name] = Tensor::from_f32({n}, std::vector<float>(size_t(n), value));
  };
  // Names in gate, up, down order.
  auto swiglu = [&](const std::array<std::string, 3>& names, int64_t I) {
    matrix(names[0], I, H, std);
    matrix(names[1], I, H, std);
    matrix(names[2], H, I, residual_std);
  };
  matrix(kEmbedTokensName, c.vocab_size, H, std);
  filled(kFinalNormName, H, 1.0f);
  if (!c.tie_word_embeddings) matrix(kLmHeadName, c.vocab_size, H, std);
  for (int l = 0; l < c.num_layers; ++l) {
    const LayerNames ln = layer_names(l);
    filled(ln.attn_norm(), H, 1.0f);
    filled(ln.ffn_norm(), H, 1.0f);
    matrix(ln.attn('q'), c.num_heads * D, H, std);
    matrix(ln.attn('k'), c.num_kv_heads * D, H, std);
    matrix(ln.attn('v'), c.num_kv_heads * D, H, std);
    matrix(ln.attn('o'), H, c.num_heads * D, residual_std);
    if (c.attention_bias) {
      filled(ln.attn_bias('q'), c.num_heads * D, 0.0f);
      filled(ln.attn_bias('k'), c.num_kv_heads * D, 0.0f);
      filled(ln.attn_bias('v'), c.num_kv_heads * D, 0.0f);
    }
    if (!c.layer_is_moe(l)) {
      swiglu({ln.mlp(kMlpGate), ln.mlp(kMlpUp), ln.mlp(kMlpDown)}, c.intermediate_size);
      continue;
    }
    const MoeNames n = moe_names(c, l);
    const int E = c.experts_in_layer(l);
    const int64_t I = c.expert_intermediate_size();
    matrix(n.router(), E, H, std);
    if (c.routing.policy == RouterPolicy::NoisyTopK) matrix(n.noise(), E, H, std);
    if (c.router_selection_bias) filled(n.selection_bias(), E, 0.0f);
    for (int e = 0; e < E; ++e) swiglu({n.expert(e, 0), n.expert(e, 1), n.expert(e, 2)}, I);
    if (c.shared_expert_intermediate_size > 0) {
      swiglu({n.shared(0), n.shared(1), n.shared(2)}, c.shared_expert_intermediate_size);
      if (c.shared_expert_gated) matrix(n.shared_gate(), 1, H, std);
    }
  }
  return w;
}

}  // namespace mf

#include "model/init.h"

#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "model/moe_names.h"

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
  auto swiglu = [&](const std::string& p, const char* gate, const char* up, const char* down, int64_t I) {
    matrix(p + gate + ".weight", I, H, std);
    matrix(p + up + ".weight", I, H, std);
    matrix(p + down + ".weight", H, I, residual_std);
  };
  matrix("model.embed_tokens.weight", c.vocab_size, H, std);
  filled("model.norm.weight", H, 1.0f);
  if (!c.tie_word_embeddings) matrix("lm_head.weight", c.vocab_size, H, std);
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".", a = p + "self_attn.";
    filled(p + "input_layernorm.weight", H, 1.0f);
    filled(p + "post_attention_layernorm.weight", H, 1.0f);
    matrix(a + "q_proj.weight", c.num_heads * D, H, std);
    matrix(a + "k_proj.weight", c.num_kv_heads * D, H, std);
    matrix(a + "v_proj.weight", c.num_kv_heads * D, H, std);
    matrix(a + "o_proj.weight", H, c.num_heads * D, residual_std);
    if (c.attention_bias) {
      filled(a + "q_proj.bias", c.num_heads * D, 0.0f);
      filled(a + "k_proj.bias", c.num_kv_heads * D, 0.0f);
      filled(a + "v_proj.bias", c.num_kv_heads * D, 0.0f);
    }
    if (!c.layer_is_moe(l)) {
      swiglu(p + "mlp.", "gate_proj", "up_proj", "down_proj", c.intermediate_size);
      continue;
    }
    const MoeNames n = moe_names(c, l);
    const int E = c.experts_in_layer(l);
    const int64_t I = c.expert_intermediate_size();
    matrix(n.router(), E, H, std);
    if (c.routing.policy == RouterPolicy::NoisyTopK) matrix(n.noise(), E, H, std);
    if (c.router_selection_bias) filled(n.selection_bias(), E, 0.0f);
    for (int e = 0; e < E; ++e) {
      matrix(n.expert(e, 0), I, H, std);
      matrix(n.expert(e, 1), I, H, std);
      matrix(n.expert(e, 2), H, I, residual_std);
    }
    if (c.shared_expert_intermediate_size > 0) {
      const int64_t S = c.shared_expert_intermediate_size;
      matrix(n.shared(0), S, H, std);
      matrix(n.shared(1), S, H, std);
      matrix(n.shared(2), H, S, residual_std);
      if (c.shared_expert_gated) matrix(n.shared_gate(), 1, H, std);
    }
  }
  return w;
}

}  // namespace mf

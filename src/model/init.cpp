#include "model/init.h"

#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"

namespace mf {

ModelWeights init_random_weights(const ModelConfig& c, uint64_t seed, float std) {
  c.validate();
  MF_CHECK(c.shared_expert_intermediate_size == 0, "init_random_weights: shared experts are not supported yet");
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
    const bool mixtral = c.model_type != "qwen2_moe";
    const std::string mp = p + (mixtral ? "block_sparse_moe." : "mlp.");
    matrix(mp + "gate.weight", c.num_experts, H, std);
    for (int e = 0; e < c.num_experts; ++e) {
      const std::string ep = mp + "experts." + std::to_string(e) + ".";
      if (mixtral)
        swiglu(ep, "w1", "w3", "w2", c.expert_intermediate_size());
      else
        swiglu(ep, "gate_proj", "up_proj", "down_proj", c.expert_intermediate_size());
    }
  }
  return w;
}

}  // namespace mf

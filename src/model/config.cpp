#include "model/config.h"

#include <algorithm>

#include "core/error.h"
#include "model/hf_layout.h"

namespace mf {

bool ModelConfig::layer_is_moe(int l) const {
  if (num_experts <= 0 || l < first_k_dense) return false;
  if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), l) != mlp_only_layers.end()) return false;
  if (moe_layer_freq > 1 && l % moe_layer_freq != 0) return false;
  const int step = decoder_sparse_step > 0 ? decoder_sparse_step : 1;
  return (l + 1) % step == 0;
}

int ModelConfig::experts_in_layer(int l) const {
  if (!layer_is_moe(l)) return 0;
  return layer_experts.empty() ? num_experts : layer_experts[size_t(l)];
}

void ModelConfig::validate() const {
  auto positive = [](const char* field, int64_t v) {
    MF_CHECK(v > 0, "model config: ", field, " must be > 0, got ", v);
  };
  static const char* kTypes[] = {"llama", "mistral", "qwen2", "mixtral", "qwen2_moe", kMoeforgeOnlyType};
  MF_CHECK(std::find(std::begin(kTypes), std::end(kTypes), model_type) != std::end(kTypes),
           "model config: model_type '", model_type,
           "' is not supported (llama, mistral, qwen2, mixtral, qwen2_moe, moeforge)");
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("num_hidden_layers", num_layers);
  positive("num_attention_heads", num_heads);
  positive("num_key_value_heads", num_kv_heads);
  // Plausibility caps, checked before any per-layer loop: a hostile config.json must not make the
  // loader spin or allocate for minutes before failing. Each is far above any released model.
  auto at_most = [](const char* field, int64_t v, int64_t cap) {
    MF_CHECK(v <= cap, "model config: ", field, " = ", v, " is implausibly large (at most ", cap, ")");
  };
  at_most("vocab_size", vocab_size, int64_t(1) << 24);
  at_most("hidden_size", hidden_size, int64_t(1) << 17);
  at_most("num_hidden_layers", num_layers, 4096);
  at_most("num_attention_heads", num_heads, 4096);
  at_most("num_key_value_heads", num_kv_heads, 4096);
  at_most("intermediate_size", intermediate_size, int64_t(1) << 20);
  at_most("head_dim", head_dim, 4096);
  at_most("max_position_embeddings", max_position_embeddings, int64_t(1) << 24);
  at_most("num_experts", num_experts, 4096);
  at_most("moe_intermediate_size", moe_intermediate_size, int64_t(1) << 20);
  at_most("shared_expert_intermediate_size", shared_expert_intermediate_size, int64_t(1) << 20);
  MF_CHECK(num_heads % num_kv_heads == 0, "model config: num_attention_heads (", num_heads,
           ") must be a multiple of num_key_value_heads (", num_kv_heads, ")");
  if (head_dim <= 0)
    MF_CHECK(hidden_size % num_heads == 0, "model config: hidden_size (", hidden_size,
             ") is not divisible by num_attention_heads (", num_heads, ") and head_dim is not set");
  MF_CHECK(effective_head_dim() % 2 == 0, "model config: head_dim must be even for RoPE, got ",
           effective_head_dim());
  positive("max_position_embeddings", max_position_embeddings);
  MF_CHECK(rope_theta > 0, "model config: rope_theta must be > 0, got ", rope_theta);
  MF_CHECK(rms_norm_eps > 0, "model config: rms_norm_eps must be > 0, got ", rms_norm_eps);
  MF_CHECK(sliding_window >= 0, "model config: sliding_window must be >= 0, got ", sliding_window);
  MF_CHECK(num_experts >= 0, "model config: num_experts must be >= 0, got ", num_experts);
  bool any_dense = false;
  for (int l = 0; l < num_layers; ++l) any_dense |= !layer_is_moe(l);
  if (any_dense) positive("intermediate_size", intermediate_size);
  if (is_moe()) {
    MF_CHECK(top_k >= 1 && top_k <= num_experts, "model config: num_experts_per_tok (", top_k,
             ") must be in [1, num_experts=", num_experts, "]");
    positive("moe_intermediate_size (or intermediate_size)", expert_intermediate_size());
    MF_CHECK(shared_expert_intermediate_size >= 0,
             "model config: shared_expert_intermediate_size must be >= 0, got ", shared_expert_intermediate_size);
    MF_CHECK(first_k_dense >= 0, "model config: first_k_dense_replace must be >= 0, got ", first_k_dense);
    if (!layer_experts.empty()) {
      MF_CHECK(int(layer_experts.size()) == num_layers, "model config: moe_layer_experts has ", layer_experts.size(),
               " entries for ", num_layers, " layers");
      int most = 0;
      for (int l = 0; l < num_layers; ++l) {
        if (!layer_is_moe(l)) continue;
        const int e = layer_experts[size_t(l)];
        MF_CHECK(e >= top_k, "model config: moe_layer_experts[", l, "] = ", e, " is fewer than num_experts_per_tok (",
                 top_k, ")");
        most = std::max(most, e);
      }
      MF_CHECK(most == num_experts, "model config: num_experts (", num_experts,
               ") must be the largest entry of moe_layer_experts (", most, ")");
      MF_CHECK(expert_names.empty(), "model config: expert_names need the same experts in every layer");
    }
    routing.validate(num_experts, top_k);
  } else {
    MF_CHECK(top_k == 0 || top_k == 1, "model config: num_experts_per_tok = ", top_k, " without experts");
  }
  MF_CHECK(expert_names.empty() || int(expert_names.size()) == num_experts, "model config: expert_names has ",
           expert_names.size(), " names for ", num_experts, " experts");
}

std::string describe_moe(const ModelConfig& c) {
  if (!c.is_moe()) return "";
  const RoutingConfig& r = c.routing;
  std::string s = router_policy_name(r.policy);
  if (r.policy == RouterPolicy::ExpertChoice)
    s += ", " + std::to_string(c.num_experts) + " experts";
  else
    s += ", top-" + std::to_string(c.top_k) + " of " + std::to_string(c.num_experts);
  if (r.policy == RouterPolicy::SoftmaxTopK) s += r.norm_topk_prob ? ", renormalised" : ", not renormalised";
  auto factor = [](double f) {
    std::string t = std::to_string(f);
    t.erase(t.find_last_not_of('0') + 1);
    if (!t.empty() && t.back() == '.') t.pop_back();
    return t;
  };
  const double train = r.capacity_for(true), eval = r.capacity_for(false);
  if (r.policy == RouterPolicy::ExpertChoice || train > 0 || eval > 0) {
    s += ", capacity " + (train > 0 ? factor(train) : std::string(r.policy == RouterPolicy::ExpertChoice ? "top_k" : "none"));
    if (eval != train) s += " (eval " + (eval > 0 ? factor(eval) : std::string("dropless")) + ")";
    if (r.min_capacity > 0) s += ", min " + std::to_string(r.min_capacity);
  } else {
    s += ", dropless";
  }
  if (c.router_selection_bias) s += ", selection bias";
  if (c.shared_expert_intermediate_size > 0)
    s += "; shared expert " + std::to_string(c.shared_expert_intermediate_size) +
         (c.shared_expert_gated ? " (gated)" : " (ungated)");
  std::string dense;
  for (int l = 0; l < c.num_layers; ++l)
    if (!c.layer_is_moe(l)) dense += (dense.empty() ? "" : ",") + std::to_string(l);
  if (!dense.empty()) s += "; dense layers " + dense;
  if (!c.layer_experts.empty()) {
    std::string per;
    for (int l = 0; l < c.num_layers; ++l)
      if (c.layer_is_moe(l)) per += (per.empty() ? "" : ",") + std::to_string(c.experts_in_layer(l));
    s += "; experts per layer " + per;
  }
  return s;
}

int64_t count_parameters(const ModelConfig& c, bool active_only) {
  const int64_t H = c.hidden_size, D = c.effective_head_dim();
  const int64_t q = int64_t(c.num_heads) * D, kv = int64_t(c.num_kv_heads) * D;
  int64_t attn = H * q + 2 * H * kv + q * H + 2 * H;  // q,k,v,o + two norms
  if (c.attention_bias) attn += q + 2 * kv;
  int64_t total = 0;
  for (int l = 0; l < c.num_layers; ++l) {
    total += attn;
    if (!c.layer_is_moe(l)) {
      total += 3 * H * c.intermediate_size;
      continue;
    }
    const int64_t expert = 3 * H * c.expert_intermediate_size(), E = c.experts_in_layer(l);
    total += H * E + (active_only ? std::min<int64_t>(c.top_k, E) : E) * expert;
    if (c.routing.policy == RouterPolicy::NoisyTopK) total += H * E;
    if (c.shared_expert_intermediate_size > 0)
      total += 3 * H * c.shared_expert_intermediate_size + (c.shared_expert_gated ? H : 0);
  }
  total += int64_t(c.vocab_size) * H + H;  // embedding + final norm
  if (!c.tie_word_embeddings) total += int64_t(c.vocab_size) * H;
  return total;
}

}  // namespace mf

// Reading applies each model_type's own defaults and quirks (Qwen2's implicit q/k/v biases and
// opt-in sliding window, Mixtral's and Qwen2-MoE's expert keys), then moeforge's moe_* keys
// override them. Writing labels every MoE other than qwen2_moe as mixtral.
#include "model/config_json.h"

#include <map>

#include "io/json_file.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "model/json_fields.h"

namespace mf {
using namespace json_fields;

namespace {

const char* kWhere = "config.json";

int require_int(const nlohmann::json& j, const char* key) {
  MF_CHECK(present(j, key), kWhere, ": required key '", key, "' is missing");
  return get_int(j, key, 0, kWhere);
}

std::vector<int> int_list(const nlohmann::json& j, const char* key) {
  std::vector<int> out;
  if (!present(j, key)) return out;
  MF_CHECK(j[key].is_array(), kWhere, ": '", key, "' must be a list of integers");
  for (const auto& x : j[key]) {
    MF_CHECK(x.is_number_integer(), kWhere, ": '", key, "' must be a list of integers");
    out.push_back(checked_int(x, key, kWhere));
  }
  return out;
}

// The MoE layer structure and routing keys, for every MoE model type (Qwen2-MoE's own keys,
// DeepSeek's layer keys, and moeforge's routing keys).
void read_routing_keys(const nlohmann::json& j, ModelConfig& c) {
  if (c.num_experts == 0 && !present(j, "moe_num_experts")) return;
  RoutingConfig& r = c.routing;
  r.policy = parse_router_policy(get_string(j, "router_policy", router_policy_name(r.policy), kWhere));
  r.norm_topk_prob = get_bool(j, "norm_topk_prob", r.norm_topk_prob, kWhere);
  r.capacity_factor = get_double(j, "capacity_factor", r.capacity_factor, kWhere);
  r.eval_capacity_factor = get_double(j, "eval_capacity_factor", r.eval_capacity_factor, kWhere);
  r.min_capacity = get_int(j, "min_capacity", r.min_capacity, kWhere);
  c.router_selection_bias = get_bool(j, "router_selection_bias", false, kWhere);
  c.shared_expert_intermediate_size =
      get_int(j, "shared_expert_intermediate_size", c.shared_expert_intermediate_size, kWhere);
  c.shared_expert_gated = c.model_type == "qwen2_moe" || get_bool(j, "shared_expert_gate", true, kWhere);
  c.decoder_sparse_step = get_int(j, "decoder_sparse_step", 1, kWhere);
  c.moe_layer_freq = get_int(j, "moe_layer_freq", 1, kWhere);
  c.first_k_dense = get_int(j, "first_k_dense_replace", 0, kWhere);
  c.mlp_only_layers = int_list(j, "mlp_only_layers");
  c.layer_experts = int_list(j, "moe_layer_experts");
}

}  // namespace

ModelConfig config_from_hf_json(const nlohmann::json& j) {
  MF_CHECK(j.is_object(), kWhere, ": expected a JSON object");
  ModelConfig c;
  c.model_type = get_string(j, "model_type", "", kWhere);
  MF_CHECK(!c.model_type.empty(), kWhere, ": required key 'model_type' is missing");
  const bool mixtral = c.model_type == "mixtral", qwen2_moe = c.model_type == "qwen2_moe";
  c.vocab_size = require_int(j, "vocab_size");
  c.hidden_size = require_int(j, "hidden_size");
  c.intermediate_size = get_int(j, "intermediate_size", 0, kWhere);
  c.num_layers = require_int(j, "num_hidden_layers");
  c.num_heads = require_int(j, "num_attention_heads");
  c.num_kv_heads = get_int(j, "num_key_value_heads", c.num_heads, kWhere);
  c.head_dim = get_int(j, "head_dim", 0, kWhere);
  c.max_position_embeddings = get_int(j, "max_position_embeddings", c.max_position_embeddings, kWhere);
  c.rope_theta = get_double(j, "rope_theta", c.rope_theta, kWhere);
  c.rms_norm_eps = float(get_double(j, "rms_norm_eps", c.rms_norm_eps, kWhere));
  c.tie_word_embeddings = get_bool(j, "tie_word_embeddings", false, kWhere);
  // Qwen2 always has q/k/v biases; Llama's attention_bias also adds one to o_proj.
  c.attention_bias = c.model_type == "qwen2" || qwen2_moe || get_bool(j, "attention_bias", false, kWhere);
  // Qwen2 carries sliding_window but only uses it when use_sliding_window is true.
  bool use_window = get_bool(j, "use_sliding_window", !(c.model_type == "qwen2" || qwen2_moe), kWhere);
  if (use_window) c.sliding_window = get_int(j, "sliding_window", 0, kWhere);
  if (present(j, "rope_scaling")) {
    const auto& rs = j["rope_scaling"];
    std::string type = rs.is_object() ? rs.value("rope_type", rs.value("type", std::string())) : "";
    MF_CHECK(type == "default", kWhere, ": rope_scaling ", json_excerpt(rs), " is not supported (only plain RoPE)");
  }
  MF_CHECK(!get_bool(j, "mlp_bias", false, kWhere), kWhere, ": mlp_bias = true is not supported");

  if (mixtral) {
    c.num_experts = get_int(j, "num_local_experts", 8, kWhere);
    c.top_k = get_int(j, "num_experts_per_tok", 2, kWhere);
    c.moe_intermediate_size = c.intermediate_size;
  } else if (qwen2_moe) {
    c.num_experts = get_int(j, "num_experts", 60, kWhere);
    c.top_k = get_int(j, "num_experts_per_tok", 4, kWhere);
    c.moe_intermediate_size = get_int(j, "moe_intermediate_size", 0, kWhere);
    c.shared_expert_intermediate_size = get_int(j, "shared_expert_intermediate_size", 0, kWhere);
    c.routing.norm_topk_prob = get_bool(j, "norm_topk_prob", false, kWhere);
  }
  read_routing_keys(j, c);
  // moeforge's own keys win: a fused model states its experts explicitly.
  c.num_experts = get_int(j, "moe_num_experts", c.num_experts, kWhere);
  c.top_k = get_int(j, "moe_top_k", c.top_k, kWhere);
  c.router_aux_loss_coef = float(get_double(j, "router_aux_loss_coef", c.router_aux_loss_coef, kWhere));
  if (present(j, "expert_names")) {
    MF_CHECK(j["expert_names"].is_array(), kWhere, ": 'expert_names' must be a list of strings");
    for (const auto& x : j["expert_names"]) {
      MF_CHECK(x.is_string(), kWhere, ": 'expert_names' must be a list of strings");
      c.expert_names.push_back(x.get<std::string>());
    }
  }
  c.bos_token_id = get_int(j, "bos_token_id", -1, kWhere);
  c.pad_token_id = get_int(j, "pad_token_id", -1, kWhere);
  c.eos_token_ids = get_int_or_list(j, "eos_token_id", kWhere);
  c.torch_dtype = get_string(j, "torch_dtype", get_string(j, "dtype", c.torch_dtype, kWhere), kWhere);
  c.validate();
  return c;
}

ModelConfig load_hf_config(const std::string& path) {
  const nlohmann::json j = read_json_file(path);
  try {
    return config_from_hf_json(j);
  } catch (const Error& e) {
    fail(path, ": ", e.what());
  }
}

nlohmann::json config_to_hf_json(const ModelConfig& c) {
  nlohmann::json j;
  const bool qwen = c.model_type == "qwen2" || c.model_type == "qwen2_moe";
  std::string type = c.model_type;
  if (c.is_moe() && type != "qwen2_moe") type = "mixtral";
  static const std::map<std::string, std::string> kArch = {
      {"llama", "LlamaForCausalLM"}, {"mistral", "MistralForCausalLM"}, {"qwen2", "Qwen2ForCausalLM"},
      {"mixtral", "MixtralForCausalLM"}, {"qwen2_moe", "Qwen2MoeForCausalLM"}};
  j["architectures"] = {kArch.count(type) ? kArch.at(type) : "LlamaForCausalLM"};
  j["model_type"] = type;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = type == "mixtral" ? c.expert_intermediate_size() : c.intermediate_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  if (c.head_dim > 0) j["head_dim"] = c.head_dim;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rope_theta"] = c.rope_theta;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["hidden_act"] = "silu";
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  if (!qwen) j["attention_bias"] = c.attention_bias;
  if (qwen) j["use_sliding_window"] = c.sliding_window > 0;
  j["sliding_window"] = c.sliding_window > 0 ? nlohmann::json(c.sliding_window) : nlohmann::json(nullptr);
  if (type == "mixtral") {
    j["num_local_experts"] = c.num_experts;
    j["num_experts_per_tok"] = c.top_k;
    j["router_aux_loss_coef"] = c.router_aux_loss_coef;
  } else if (type == "qwen2_moe") {
    j["num_experts"] = c.num_experts;
    j["num_experts_per_tok"] = c.top_k;
    j["moe_intermediate_size"] = c.moe_intermediate_size;
    j["shared_expert_intermediate_size"] = c.shared_expert_intermediate_size;
    j["router_aux_loss_coef"] = c.router_aux_loss_coef;
  }
  if (c.is_moe()) {
    j["moe_num_experts"] = c.num_experts;
    j["moe_top_k"] = c.top_k;
    const RoutingConfig& r = c.routing;
    j["router_policy"] = router_policy_name(r.policy);
    j["norm_topk_prob"] = r.norm_topk_prob;
    j["capacity_factor"] = r.capacity_factor;
    if (r.eval_capacity_factor >= 0) j["eval_capacity_factor"] = r.eval_capacity_factor;
    j["min_capacity"] = r.min_capacity;
    if (c.router_selection_bias) j["router_selection_bias"] = true;
    if (c.shared_expert_intermediate_size > 0 && type != "qwen2_moe") {
      j["shared_expert_intermediate_size"] = c.shared_expert_intermediate_size;
      j["shared_expert_gate"] = c.shared_expert_gated;
    }
    j["decoder_sparse_step"] = c.decoder_sparse_step;
    j["mlp_only_layers"] = c.mlp_only_layers;
    if (c.moe_layer_freq != 1) j["moe_layer_freq"] = c.moe_layer_freq;
    if (c.first_k_dense > 0) j["first_k_dense_replace"] = c.first_k_dense;
    if (!c.layer_experts.empty()) j["moe_layer_experts"] = c.layer_experts;
    if (!c.expert_names.empty()) j["expert_names"] = c.expert_names;
  }
  if (c.bos_token_id >= 0) j["bos_token_id"] = c.bos_token_id;
  if (c.pad_token_id >= 0) j["pad_token_id"] = c.pad_token_id;
  if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids[0];
  if (c.eos_token_ids.size() > 1) j["eos_token_id"] = c.eos_token_ids;
  j["torch_dtype"] = c.torch_dtype;
  return j;
}

}  // namespace mf

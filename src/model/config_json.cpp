// Reading applies each model_type's own defaults and quirks (Qwen2's implicit q/k/v biases and
// opt-in sliding window, Mixtral's and Qwen2-MoE's expert keys), then moeforge's moe_* keys
// override them. Writing uses the transformers layout that computes the same model (model/hf_layout).
#include "model/config_json.h"

#include <charconv>
#include <cstdlib>
#include <map>
#include <set>

#include "io/json_file.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "model/hf_layout.h"
#include "model/json_fields.h"

namespace mf {
using namespace json_fields;

namespace {

const char* kWhere = "config.json";

// Typed reads of config.json keys that remember every key looked at, so that a hand-written
// config (a recipe's model.config) can be refused for keys moeforge does not read: a typo there
// would silently give another model.
class KeyReader {
 public:
  explicit KeyReader(const nlohmann::json& j) : j_(j) {}
  bool present(const char* key) { return json_fields::present(j_, mark(key)); }
  const nlohmann::json& operator[](const char* key) { return j_[mark(key)]; }
  int get_int(const char* key, int fallback) { return json_fields::get_int(j_, mark(key), fallback, kWhere); }
  double get_double(const char* key, double fallback) {
    return json_fields::get_double(j_, mark(key), fallback, kWhere);
  }
  bool get_bool(const char* key, bool fallback) { return json_fields::get_bool(j_, mark(key), fallback, kWhere); }
  std::string get_string(const char* key, const std::string& fallback) {
    return json_fields::get_string(j_, mark(key), fallback, kWhere);
  }
  std::vector<int> get_int_or_list(const char* key) { return json_fields::get_int_or_list(j_, mark(key), kWhere); }
  int require_int(const char* key) {
    MF_CHECK(present(key), kWhere, ": required key '", key, "' is missing");
    return get_int(key, 0);
  }
  std::vector<int> int_list(const char* key) {
    std::vector<int> out;
    if (!present(key)) return out;
    MF_CHECK(j_[key].is_array(), kWhere, ": '", key, "' must be a list of integers");
    for (const auto& x : j_[key]) {
      MF_CHECK(x.is_number_integer(), kWhere, ": '", key, "' must be a list of integers");
      out.push_back(checked_int(x, key, kWhere));
    }
    return out;
  }
  // The keys of the object that no read looked at, in the object's order.
  std::vector<std::string> unread() const {
    std::vector<std::string> out;
    for (const auto& [key, value] : j_.items())
      if (!read_.count(key)) out.push_back(key);
    return out;
  }

 private:
  const char* mark(const char* key) {
    read_.insert(key);
    return key;
  }
  const nlohmann::json& j_;
  std::set<std::string> read_;
};

// The MoE layer structure and routing keys, for every MoE model type (Qwen2-MoE's own keys,
// DeepSeek's layer keys, and moeforge's routing keys).
void read_routing_keys(KeyReader& in, ModelConfig& c) {
  if (c.num_experts == 0 && !in.present("moe_num_experts")) return;
  RoutingConfig& r = c.routing;
  r.policy = parse_router_policy(in.get_string("router_policy", router_policy_name(r.policy)));
  r.norm_topk_prob = in.get_bool("norm_topk_prob", r.norm_topk_prob);
  r.capacity_factor = in.get_double("capacity_factor", r.capacity_factor);
  r.eval_capacity_factor = in.get_double("eval_capacity_factor", r.eval_capacity_factor);
  r.min_capacity = in.get_int("min_capacity", r.min_capacity);
  c.router_selection_bias = in.get_bool("router_selection_bias", false);
  c.shared_expert_intermediate_size =
      in.get_int("shared_expert_intermediate_size", c.shared_expert_intermediate_size);
  c.shared_expert_gated = c.model_type == "qwen2_moe" || in.get_bool("shared_expert_gate", true);
  c.decoder_sparse_step = in.get_int("decoder_sparse_step", 1);
  c.moe_layer_freq = in.get_int("moe_layer_freq", 1);
  c.first_k_dense = in.get_int("first_k_dense_replace", 0);
  c.mlp_only_layers = in.int_list("mlp_only_layers");
  c.layer_experts = in.int_list("moe_layer_experts");
}

// A float32 field as the shortest decimal that reads back as the same float (1e-05, not the
// 9.999999747378752e-06 its exact double value prints as), so config.json says what was meant.
double float_for_json(float f) {
  char buf[32];
  const auto end = std::to_chars(buf, buf + sizeof buf, f).ptr;
  return std::strtod(std::string(buf, end).c_str(), nullptr);
}

}  // namespace

ModelConfig config_from_hf_json(const nlohmann::json& j, std::vector<std::string>* unread_keys) {
  MF_CHECK(j.is_object(), kWhere, ": expected a JSON object");
  KeyReader in(j);
  ModelConfig c;
  c.model_type = in.get_string("model_type", "");
  MF_CHECK(!c.model_type.empty(), kWhere, ": required key 'model_type' is missing");
  const bool mixtral = c.model_type == "mixtral", qwen2_moe = c.model_type == "qwen2_moe";
  const bool moeforge_only = c.model_type == kMoeforgeOnlyType;
  c.vocab_size = in.require_int("vocab_size");
  c.hidden_size = in.require_int("hidden_size");
  c.intermediate_size = in.get_int("intermediate_size", 0);
  c.num_layers = in.require_int("num_hidden_layers");
  c.num_heads = in.require_int("num_attention_heads");
  c.num_kv_heads = in.get_int("num_key_value_heads", c.num_heads);
  c.head_dim = in.get_int("head_dim", 0);
  c.max_position_embeddings = in.get_int("max_position_embeddings", c.max_position_embeddings);
  c.rope_theta = in.get_double("rope_theta", c.rope_theta);
  c.rms_norm_eps = float(in.get_double("rms_norm_eps", c.rms_norm_eps));
  c.tie_word_embeddings = in.get_bool("tie_word_embeddings", false);
  // Qwen2 always has q/k/v biases; Llama's attention_bias also adds one to o_proj.
  c.attention_bias = c.model_type == "qwen2" || qwen2_moe || in.get_bool("attention_bias", false);
  // Qwen2 carries sliding_window but only uses it when use_sliding_window is true.
  bool use_window = in.get_bool("use_sliding_window", !(c.model_type == "qwen2" || qwen2_moe));
  if (use_window) c.sliding_window = in.get_int("sliding_window", 0);
  if (in.present("rope_scaling")) {
    const auto& rs = in["rope_scaling"];
    std::string type = rs.is_object() ? rs.value("rope_type", rs.value("type", std::string())) : "";
    MF_CHECK(type == "default", kWhere, ": rope_scaling ", json_excerpt(rs), " is not supported (only plain RoPE)");
  }
  MF_CHECK(!in.get_bool("mlp_bias", false), kWhere, ": mlp_bias = true is not supported");

  if (mixtral) {
    c.num_experts = in.get_int("num_local_experts", 8);
    c.top_k = in.get_int("num_experts_per_tok", 2);
    c.moe_intermediate_size = c.intermediate_size;
  } else if (qwen2_moe) {
    c.num_experts = in.get_int("num_experts", 60);
    c.top_k = in.get_int("num_experts_per_tok", 4);
    c.moe_intermediate_size = in.get_int("moe_intermediate_size", 0);
    c.shared_expert_intermediate_size = in.get_int("shared_expert_intermediate_size", 0);
    c.routing.norm_topk_prob = in.get_bool("norm_topk_prob", false);
  } else if (moeforge_only) {
    // moeforge's own type (model/hf_layout): experts and their width in moeforge's keys; the
    // reasons it is not a transformers type are informational.
    MF_CHECK(in.present("moe_num_experts"), kWhere, ": model_type '", kMoeforgeOnlyType, "' needs 'moe_num_experts'");
    c.moe_intermediate_size = in.get_int("moe_intermediate_size", 0);
    in.present("moeforge_only_because");
  }
  read_routing_keys(in, c);
  // moeforge's own keys win: a fused model states its experts explicitly. Where the type has its
  // own key too (what transformers and llama.cpp read), the two must agree: an edit of one alone
  // would otherwise run a different model here than there.
  const int type_experts = c.num_experts, type_top_k = c.top_k;
  c.num_experts = in.get_int("moe_num_experts", c.num_experts);
  c.top_k = in.get_int("moe_top_k", c.top_k);
  const char* experts_key = mixtral ? "num_local_experts" : qwen2_moe ? "num_experts" : nullptr;
  MF_CHECK(!experts_key || !in.present("moe_num_experts") || !in.present(experts_key) || c.num_experts == type_experts,
           kWhere, ": 'moe_num_experts' = ", c.num_experts, " but '", experts_key, "' = ", type_experts,
           "; transformers and llama.cpp read '", experts_key, "': make the two agree");
  MF_CHECK(!experts_key || !in.present("moe_top_k") || !in.present("num_experts_per_tok") || c.top_k == type_top_k,
           kWhere, ": 'moe_top_k' = ", c.top_k, " but 'num_experts_per_tok' = ", type_top_k,
           "; transformers and llama.cpp read 'num_experts_per_tok': make the two agree");
  c.router_aux_loss_coef = float(in.get_double("router_aux_loss_coef", c.router_aux_loss_coef));
  if (in.present("expert_names")) {
    MF_CHECK(in["expert_names"].is_array(), kWhere, ": 'expert_names' must be a list of strings");
    for (const auto& x : in["expert_names"]) {
      MF_CHECK(x.is_string(), kWhere, ": 'expert_names' must be a list of strings");
      c.expert_names.push_back(x.get<std::string>());
    }
  }
  c.bos_token_id = in.get_int("bos_token_id", -1);
  c.pad_token_id = in.get_int("pad_token_id", -1);
  c.eos_token_ids = in.get_int_or_list("eos_token_id");
  const std::string dtype = in.get_string("dtype", c.torch_dtype);
  c.torch_dtype = in.get_string("torch_dtype", dtype);
  // Every architecture moeforge runs uses SiLU in its gated MLP; another activation would load as
  // a different model.
  const std::string act = in.get_string("hidden_act", in.get_string("hidden_activation", "silu"));
  MF_CHECK(act == "silu" || act == "swish", kWhere, ": hidden_act '", act, "' is not supported (only silu)");
  c.validate();
  if (unread_keys) *unread_keys = in.unread();
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
  const HfLayout layout = choose_hf_layout(c);
  const std::string& type = layout.model_type;
  const bool qwen = type == "qwen2" || type == "qwen2_moe";
  static const std::map<std::string, std::string> kArch = {
      {"llama", "LlamaForCausalLM"},    {"mistral", "MistralForCausalLM"},     {"qwen2", "Qwen2ForCausalLM"},
      {"mixtral", "MixtralForCausalLM"}, {"qwen2_moe", "Qwen2MoeForCausalLM"}, {kMoeforgeOnlyType, "MoeforgeForCausalLM"}};
  j["architectures"] = {kArch.count(type) ? kArch.at(type) : "LlamaForCausalLM"};
  j["model_type"] = type;
  if (!layout.blockers.empty()) j["moeforge_only_because"] = layout.blockers;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  // Mixtral's intermediate_size is the experts' width; Qwen2-MoE's and moeforge's are the dense
  // layers' (the experts' is moe_intermediate_size).
  const bool experts_width = type == "mixtral" || c.intermediate_size == 0;
  j["intermediate_size"] = experts_width ? c.expert_intermediate_size() : c.intermediate_size;
  if (type == kMoeforgeOnlyType) j["moe_intermediate_size"] = c.expert_intermediate_size();
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  if (c.head_dim > 0) j["head_dim"] = c.head_dim;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rope_theta"] = c.rope_theta;
  j["rms_norm_eps"] = float_for_json(c.rms_norm_eps);
  j["hidden_act"] = "silu";
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  if (!qwen) j["attention_bias"] = c.attention_bias;
  if (qwen) j["use_sliding_window"] = c.sliding_window > 0;
  j["sliding_window"] = c.sliding_window > 0 ? nlohmann::json(c.sliding_window) : nlohmann::json(nullptr);
  if (type == "mixtral") {
    j["num_local_experts"] = c.num_experts;
    j["num_experts_per_tok"] = c.top_k;
    j["router_aux_loss_coef"] = float_for_json(c.router_aux_loss_coef);
  } else if (type == "qwen2_moe") {
    const RoutingConfig& r = c.routing;
    const bool switch_top1 = r.policy == RouterPolicy::Switch;
    j["num_experts"] = c.num_experts;
    // Switch routes one slot with its softmax probability as the gate: top-1 unrenormalised.
    j["num_experts_per_tok"] = switch_top1 ? 1 : c.top_k;
    j["norm_topk_prob"] = r.policy == RouterPolicy::TopKSoftmax || (r.policy == RouterPolicy::SoftmaxTopK && r.norm_topk_prob);
    j["moe_intermediate_size"] = c.expert_intermediate_size();
    // 0 when the model has none: save writes it as a zero-width expert that adds exactly 0.
    j["shared_expert_intermediate_size"] = c.shared_expert_intermediate_size;
    j["router_aux_loss_coef"] = float_for_json(c.router_aux_loss_coef);
    // The layer pattern as the one list both tools read the same way.
    std::vector<int> dense;
    for (int l = 0; l < c.num_layers; ++l)
      if (!c.layer_is_moe(l)) dense.push_back(l);
    j["decoder_sparse_step"] = 1;
    j["mlp_only_layers"] = dense;
  }
  if (c.is_moe()) {
    j["moe_num_experts"] = c.num_experts;
    j["moe_top_k"] = c.top_k;
    const RoutingConfig& r = c.routing;
    j["router_policy"] = router_policy_name(r.policy);
    if (type != "qwen2_moe") j["norm_topk_prob"] = r.norm_topk_prob;
    j["capacity_factor"] = r.capacity_factor;
    if (r.eval_capacity_factor >= 0) j["eval_capacity_factor"] = r.eval_capacity_factor;
    j["min_capacity"] = r.min_capacity;
    if (c.router_selection_bias) j["router_selection_bias"] = true;
    if (c.shared_expert_intermediate_size > 0 && type != "qwen2_moe") {
      j["shared_expert_intermediate_size"] = c.shared_expert_intermediate_size;
      j["shared_expert_gate"] = c.shared_expert_gated;
    }
    if (type != "qwen2_moe") {
      j["decoder_sparse_step"] = c.decoder_sparse_step;
      j["mlp_only_layers"] = c.mlp_only_layers;
      if (c.moe_layer_freq != 1) j["moe_layer_freq"] = c.moe_layer_freq;
      if (c.first_k_dense > 0) j["first_k_dense_replace"] = c.first_k_dense;
    }
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

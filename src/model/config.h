// ModelConfig: the architecture of a Llama-family dense or MoE decoder, independent of the
// file it came from (HF config.json or GGUF metadata).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "moe/routing_config.h"

namespace mf {

struct ModelConfig {
  std::string model_type = "llama";   // llama | mistral | qwen2 | mixtral | qwen2_moe
  int vocab_size = 0, hidden_size = 0, intermediate_size = 0, num_layers = 0;
  int num_heads = 0, num_kv_heads = 0, head_dim = 0;     // head_dim defaults to hidden/heads
  int max_position_embeddings = 2048;
  double rope_theta = 10000.0;
  float rms_norm_eps = 1e-5f;
  int sliding_window = 0;             // mistral: 0 = none; else a query sees this many keys
  bool tie_word_embeddings = false;
  bool attention_bias = false;        // qwen2: q/k/v biases
  int num_experts = 0, top_k = 0;     // 0 experts = dense
  int moe_intermediate_size = 0;      // expert FFN width (0: intermediate_size)
  RoutingConfig routing;              // policy, top-k renormalisation, capacity
  // Shared expert every token uses (Qwen2-MoE / DeepSeek-MoE), in MoE layers; with the gate its
  // output is scaled by sigmoid(shared_expert_gate x) (Qwen2-MoE always has the gate).
  int shared_expert_intermediate_size = 0;
  bool shared_expert_gated = true;
  // Which layers are MoE: layer l is dense when l < first_k_dense (DeepSeek's
  // first_k_dense_replace), when l % moe_layer_freq != 0 (DeepSeek), when (l+1) %
  // decoder_sparse_step != 0 (Qwen2-MoE) or when it is in mlp_only_layers.
  int decoder_sparse_step = 1;
  int moe_layer_freq = 1;             // DeepSeek: MoE when l >= first_k_dense and l % freq == 0
  int first_k_dense = 0;
  std::vector<int> mlp_only_layers;
  // Experts per MoE layer when they differ (pyramid MoE); empty: num_experts everywhere.
  // num_experts is then the largest entry.
  std::vector<int> layer_experts;
  // Each MoE router has a per-expert bias added to its selection scores only
  // (gate.e_score_correction_bias, DeepSeek-V3's auxiliary-loss-free balancing).
  bool router_selection_bias = false;
  float router_aux_loss_coef = 0.01f;
  int bos_token_id = -1, pad_token_id = -1;
  std::vector<int> eos_token_ids;
  std::vector<std::string> expert_names;
  std::string torch_dtype = "float32";

  bool is_moe() const { return num_experts > 0; }
  // Whether layer `l` has a routed-expert FFN (false for every layer of a dense model).
  bool layer_is_moe(int l) const;
  // Experts of layer l (0 for a dense layer).
  int experts_in_layer(int l) const;
  int effective_head_dim() const { return head_dim > 0 ? head_dim : (num_heads > 0 ? hidden_size / num_heads : 0); }
  int expert_intermediate_size() const { return moe_intermediate_size > 0 ? moe_intermediate_size : intermediate_size; }
  // Throws mf::Error naming the first bad field.
  void validate() const;
};

// One line on how the MoE layers route and are laid out, e.g. "noisy_topk, top-2 of 8, capacity
// 1 (eval dropless); shared expert 344 (ungated); experts per layer 4,4,8,8"; "" for dense.
std::string describe_moe(const ModelConfig& c);

// Parameters of the model: all of them, or only those one token touches (top_k of the
// experts, plus everything shared). Embedding and head count separately unless tied.
int64_t count_parameters(const ModelConfig& c, bool active_only);

}  // namespace mf

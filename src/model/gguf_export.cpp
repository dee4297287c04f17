#include "model/gguf_export.h"

#include <cstring>

#include "core/error.h"
#include "io/gguf.h"
#include "kernels/cpu/quant.h"
#include "model/gguf_names.h"
#include "model/tensor_names.h"

namespace mf {

namespace {

const Tensor& find(const ModelWeights& w, const std::string& name) {
  auto it = w.tensors.find(name);
  MF_CHECK(it != w.tensors.end(), w.source, ": missing tensor '", name, "'");
  return it->second;
}

Tensor convert(const Tensor& t, DType type, const std::string& name) {
  if (t.dtype() == type) return t;
  const Tensor f = t.to_f32();
  if (type == DType::F32) return f;
  const int64_t row = f.shape().back();
  const int block = dtype_info(type).block_elems;
  MF_CHECK(row % block == 0, name, ": rows of ", row, " values do not split into ", dtype_name(type), " blocks of ",
           block, "; export with --type f16");
  Tensor out = Tensor::empty(type, f.shape());
  quantize_row(type, f.data<float>(), out.raw(), f.numel());
  return out;
}

// Experts e = 0..E-1 of one matrix kind, stacked into [E, rows, cols] of `type`.
Tensor stack_experts(const ModelWeights& w, int layer, int part, DType type) {
  const int E = w.config.num_experts;
  const MoeNames names = mixtral_moe_names(layer);
  std::vector<Tensor> parts;
  for (int e = 0; e < E; ++e) {
    const std::string name = names.expert(e, part);
    parts.push_back(convert(find(w, name), type, name));
  }
  const Shape s = parts[0].shape();
  Tensor out = Tensor::empty(type, {int64_t(E), s[0], s[1]});
  auto* dst = static_cast<uint8_t*>(out.raw());
  for (const Tensor& p : parts) {
    MF_CHECK(p.shape() == s, w.source, ": layer ", layer, " experts differ in shape");
    std::memcpy(dst, p.raw(), p.nbytes());
    dst += p.nbytes();
  }
  return out;
}

}  // namespace

void save_gguf_model(const ModelWeights& w, const BpeVocab& vocab, const std::string& path,
                     const GgufExportOptions& opts) {
  const ModelConfig& c = w.config;
  MF_CHECK(!c.attention_bias, w.source, ": attention biases have no place in the llama GGUF architecture");
  MF_CHECK(c.sliding_window == 0, w.source, ": a sliding window has no llama GGUF key");
  MF_CHECK(c.shared_expert_intermediate_size == 0 && (!c.is_moe() || c.model_type == "mixtral"), w.source,
           ": only dense llama/mistral and Mixtral-layout MoE models export to the llama GGUF architecture");
  if (c.is_moe()) {
    // llama.cpp runs a llama-architecture MoE as Mixtral: softmax, top-k, renormalise, every
    // layer MoE with the same experts, no capacity. Anything else would run differently there.
    bool all_moe = c.layer_experts.empty();
    for (int l = 0; l < c.num_layers; ++l) all_moe &= c.layer_is_moe(l);
    MF_CHECK(all_moe, w.source, ": the llama GGUF architecture needs every layer MoE with the same experts "
             "(dense layers or moe_layer_experts cannot be exported)");
    const RoutingConfig& r = c.routing;
    // top-k-then-softmax and noisy top-k (no noise at inference) compute the same gates.
    MF_CHECK((r.policy == RouterPolicy::SoftmaxTopK && r.norm_topk_prob) || r.policy == RouterPolicy::TopKSoftmax ||
                 r.policy == RouterPolicy::NoisyTopK,
             w.source, ": router_policy ", router_policy_name(r.policy), (r.norm_topk_prob ? "" : " without renormalisation"),
             " has no equivalent in the llama GGUF architecture (softmax top-k with renormalisation only)");
    MF_CHECK(r.capacity_for(false) == 0 && !c.router_selection_bias, w.source,
             ": expert capacity and selection biases have no equivalent in the llama GGUF architecture");
  }
  MF_CHECK(int(vocab.tokens.size()) == c.vocab_size, w.source, ": the vocabulary has ", vocab.tokens.size(),
           " tokens, the model ", c.vocab_size);
  const DType mt = opts.matrix_type;
  MF_CHECK(mt == DType::F32 || mt == DType::F16 || mt == DType::BF16 || mt == DType::Q8_0 || mt == DType::Q4_0 ||
               mt == DType::Q4_1,
           "GGUF export: matrix type ", dtype_name(mt), " is not one of F32, F16, BF16, Q8_0, Q4_0, Q4_1");
  GgufWriter g;
  auto u32 = [](int64_t v) { return GgufValue::of_u32(uint32_t(v)); };
  g.add_kv("general.architecture", GgufValue::of_string("llama"));
  g.add_kv("general.name", GgufValue::of_string(opts.name.empty() ? "moeforge model" : opts.name));
  // llama_ftype: what llama.cpp and the gguf tools report as the file's type.
  const uint32_t file_type = mt == DType::F32 ? 0 : mt == DType::F16 ? 1 : mt == DType::Q4_0 ? 2 : mt == DType::Q4_1 ? 3
                             : mt == DType::Q8_0 ? 7 : 32;  // BF16
  g.add_kv("general.file_type", GgufValue::of_u32(file_type));
  g.add_kv("llama.context_length", u32(c.max_position_embeddings));
  g.add_kv("llama.embedding_length", u32(c.hidden_size));
  g.add_kv("llama.block_count", u32(c.num_layers));
  g.add_kv("llama.feed_forward_length", u32(c.is_moe() ? c.expert_intermediate_size() : c.intermediate_size));
  g.add_kv("llama.attention.head_count", u32(c.num_heads));
  g.add_kv("llama.attention.head_count_kv", u32(c.num_kv_heads));
  g.add_kv("llama.rope.freq_base", GgufValue::of_f32(float(c.rope_theta)));
  g.add_kv("llama.rope.dimension_count", u32(c.effective_head_dim()));
  g.add_kv("llama.attention.layer_norm_rms_epsilon", GgufValue::of_f32(c.rms_norm_eps));
  g.add_kv("llama.vocab_size", u32(c.vocab_size));
  if (c.is_moe()) {
    g.add_kv("llama.expert_count", u32(c.num_experts));
    g.add_kv("llama.expert_used_count", u32(c.top_k));
    if (!c.expert_names.empty()) g.add_kv("moeforge.expert_names", GgufValue::of_string_array(c.expert_names));
  }
  g.add_kv("tokenizer.ggml.model", GgufValue::of_string("gpt2"));
  g.add_kv("tokenizer.ggml.pre", GgufValue::of_string(vocab.pre));
  g.add_kv("tokenizer.ggml.tokens", GgufValue::of_string_array(vocab.tokens));
  std::vector<int32_t> types = vocab.token_types;
  types.resize(vocab.tokens.size(), 1);
  g.add_kv("tokenizer.ggml.token_type", GgufValue::of_i32_array(types));
  g.add_kv("tokenizer.ggml.merges", GgufValue::of_string_array(vocab.merges));
  if (vocab.bos_id >= 0) g.add_kv("tokenizer.ggml.bos_token_id", u32(vocab.bos_id));
  if (vocab.eos_id >= 0) g.add_kv("tokenizer.ggml.eos_token_id", u32(vocab.eos_id));
  if (vocab.pad_id >= 0) g.add_kv("tokenizer.ggml.padding_token_id", u32(vocab.pad_id));
  if (vocab.unk_id >= 0) g.add_kv("tokenizer.ggml.unknown_token_id", u32(vocab.unk_id));
  g.add_kv("tokenizer.ggml.add_bos_token", GgufValue::of_bool(vocab.add_bos));
  if (!opts.chat_template.empty()) g.add_kv("tokenizer.chat_template", GgufValue::of_string(opts.chat_template));

  auto matrix = [&](const std::string& gguf, const std::string& hf) { g.add_tensor(gguf, convert(find(w, hf), mt, hf)); };
  auto vector = [&](const std::string& gguf, const std::string& hf) { g.add_tensor(gguf, find(w, hf).to_f32()); };
  matrix("token_embd.weight", kEmbedTokensName);
  vector("output_norm.weight", kFinalNormName);
  if (!c.tie_word_embeddings) matrix("output.weight", kLmHeadName);
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    const LayerNames p = layer_names(l);
    vector(b + "attn_norm.weight", p.attn_norm());
    vector(b + "ffn_norm.weight", p.ffn_norm());
    const std::string q = p.attn('q'), k = p.attn('k');
    g.add_tensor(b + "attn_q.weight", convert(permute_qk_rows(find(w, q), c.num_heads, q), mt, q));
    g.add_tensor(b + "attn_k.weight", convert(permute_qk_rows(find(w, k), c.num_kv_heads, k), mt, k));
    matrix(b + "attn_v.weight", p.attn('v'));
    matrix(b + "attn_output.weight", p.attn('o'));
    if (c.layer_is_moe(l)) {
      vector(b + "ffn_gate_inp.weight", mixtral_moe_names(l).router());
      g.add_tensor(b + "ffn_gate_exps.weight", stack_experts(w, l, kMlpGate, mt));
      g.add_tensor(b + "ffn_up_exps.weight", stack_experts(w, l, kMlpUp, mt));
      g.add_tensor(b + "ffn_down_exps.weight", stack_experts(w, l, kMlpDown, mt));
    } else {
      matrix(b + "ffn_gate.weight", p.mlp(kMlpGate));
      matrix(b + "ffn_up.weight", p.mlp(kMlpUp));
      matrix(b + "ffn_down.weight", p.mlp(kMlpDown));
    }
  }
  g.write(path);
}

}  // namespace mf

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
  // gguf_matrix_type chose `type` for this row length; a stacked tensor's rows are its experts'.
  MF_CHECK(f.shape().back() % dtype_info(type).block_elems == 0, name, ": rows of ", f.shape().back(),
           " values do not split into ", dtype_name(type), " blocks");
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

GgufTypeCounts save_gguf_model(const ModelWeights& w, const BpeVocab& vocab, const std::string& path,
                               const GgufExportOptions& opts) {
  const ModelConfig& c = w.config;
  MF_CHECK(!c.attention_bias, w.source, ": attention biases have no place in the llama GGUF architecture");
  MF_CHECK(c.sliding_window == 0, w.source, ": a sliding window has no llama GGUF key");
  MF_CHECK(c.shared_expert_intermediate_size == 0 && (!c.is_moe() || c.model_type != "qwen2_moe"), w.source,
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
  GgufWriter g;
  auto u32 = [](int64_t v) { return GgufValue::of_u32(uint32_t(v)); };
  g.add_kv("general.architecture", GgufValue::of_string("llama"));
  g.add_kv("general.name", GgufValue::of_string(opts.name.empty() ? "moeforge model" : opts.name));
  // llama_ftype: what llama.cpp and the gguf tools report as the file's type.
  const GgufQuantMix& mix = opts.types;
  g.add_kv("general.file_type", GgufValue::of_u32(mix.file_type));
  // GGML_QNT_VERSION, which llama-quantize records in every quantized file.
  if (dtype_info(mix.base).quantized) g.add_kv("general.quantization_version", GgufValue::of_u32(2));
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
    if (!c.expert_names.empty()) g.add_kv(kGgufExpertNamesKey, GgufValue::of_string_array(c.expert_names));
  }
  // gpt2: byte-level BPE with merges; llama: SentencePiece BPE, llama.cpp merges by score.
  MF_CHECK(vocab.model == "gpt2" || vocab.model == "llama", path, ": tokenizer model '", vocab.model,
           "' has no GGUF form");
  g.add_kv("tokenizer.ggml.model", GgufValue::of_string(vocab.model));
  g.add_kv("tokenizer.ggml.pre", GgufValue::of_string(vocab.pre));
  g.add_kv("tokenizer.ggml.tokens", GgufValue::of_string_array(vocab.tokens));
  std::vector<int32_t> types = vocab.token_types;
  types.resize(vocab.tokens.size(), 1);
  g.add_kv("tokenizer.ggml.token_type", GgufValue::of_i32_array(types));
  if (vocab.model == "gpt2") g.add_kv("tokenizer.ggml.merges", GgufValue::of_string_array(vocab.merges));
  if (vocab.model == "llama") {
    MF_CHECK(vocab.scores.size() == vocab.tokens.size(), path, ": a llama vocabulary needs one score per token (",
             vocab.scores.size(), " for ", vocab.tokens.size(), ")");
    g.add_kv("tokenizer.ggml.scores", GgufValue::of_f32_array(vocab.scores));
    g.add_kv("tokenizer.ggml.add_space_prefix", GgufValue::of_bool(vocab.add_space_prefix));
  }
  if (vocab.bos_id >= 0) g.add_kv("tokenizer.ggml.bos_token_id", u32(vocab.bos_id));
  if (vocab.eos_id >= 0) g.add_kv("tokenizer.ggml.eos_token_id", u32(vocab.eos_id));
  if (vocab.pad_id >= 0) g.add_kv("tokenizer.ggml.padding_token_id", u32(vocab.pad_id));
  if (vocab.unk_id >= 0) g.add_kv("tokenizer.ggml.unknown_token_id", u32(vocab.unk_id));
  g.add_kv("tokenizer.ggml.add_bos_token", GgufValue::of_bool(vocab.add_bos));
  if (!opts.chat_template.empty()) g.add_kv("tokenizer.chat_template", GgufValue::of_string(opts.chat_template));

  const GgufModelShape shape{c.num_layers, c.is_moe() ? c.num_experts : 0, c.tie_word_embeddings};
  GgufTypeCounts counts;
  auto add = [&](const std::string& gguf, Tensor t) {
    ++counts[std::string(dtype_name(t.dtype()))];
    g.add_tensor(gguf, std::move(t));
  };
  // The type of a matrix with rows of `cols` values, by its role and layer (errors name `hf`).
  auto type_of = [&](const std::string& hf, GgufRole role, int layer, int64_t cols) {
    return gguf_matrix_type(mix, shape, GgufMatrix{role, layer, cols}, hf);
  };
  auto matrix = [&](const std::string& gguf, const std::string& hf, GgufRole role, int layer) {
    const Tensor& t = find(w, hf);
    add(gguf, convert(t, type_of(hf, role, layer, t.shape().back()), hf));
  };
  auto vector = [&](const std::string& gguf, const std::string& hf) { add(gguf, find(w, hf).to_f32()); };
  matrix("token_embd.weight", kEmbedTokensName, GgufRole::TokenEmbd, -1);
  vector("output_norm.weight", kFinalNormName);
  if (!c.tie_word_embeddings) matrix("output.weight", kLmHeadName, GgufRole::Output, -1);
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    const LayerNames p = layer_names(l);
    vector(b + "attn_norm.weight", p.attn_norm());
    vector(b + "ffn_norm.weight", p.ffn_norm());
    const std::string q = p.attn('q'), k = p.attn('k');
    const Tensor& wq = find(w, q);
    const Tensor& wk = find(w, k);
    add(b + "attn_q.weight", convert(permute_qk_rows(wq, c.num_heads, q),
                                     type_of(q, GgufRole::AttnQ, l, wq.shape().back()), q));
    add(b + "attn_k.weight", convert(permute_qk_rows(wk, c.num_kv_heads, k),
                                     type_of(k, GgufRole::AttnK, l, wk.shape().back()), k));
    matrix(b + "attn_v.weight", p.attn('v'), GgufRole::AttnV, l);
    matrix(b + "attn_output.weight", p.attn('o'), GgufRole::AttnOutput, l);
    if (c.layer_is_moe(l)) {
      const MoeNames moe = mixtral_moe_names(l);
      vector(b + "ffn_gate_inp.weight", moe.router());
      auto experts = [&](const std::string& gguf, int part, GgufRole role) {
        const std::string first = moe.expert(0, part);
        add(gguf, stack_experts(w, l, part, type_of(first, role, l, find(w, first).shape().back())));
      };
      experts(b + "ffn_gate_exps.weight", kMlpGate, GgufRole::FfnGate);
      experts(b + "ffn_up_exps.weight", kMlpUp, GgufRole::FfnUp);
      experts(b + "ffn_down_exps.weight", kMlpDown, GgufRole::FfnDown);
    } else {
      matrix(b + "ffn_gate.weight", p.mlp(kMlpGate), GgufRole::FfnGate, l);
      matrix(b + "ffn_up.weight", p.mlp(kMlpUp), GgufRole::FfnUp, l);
      matrix(b + "ffn_down.weight", p.mlp(kMlpDown), GgufRole::FfnDown, l);
    }
  }
  g.write(path);
  return counts;
}

}  // namespace mf

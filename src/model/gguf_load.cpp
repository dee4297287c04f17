#include <set>

#include "core/error.h"
#include "model/gguf_names.h"
#include "model/load.h"
#include "model/tensor_names.h"

namespace mf {
namespace {

class Meta {
 public:
  Meta(const GgufFile& f, std::string arch) : f_(f), arch_(std::move(arch)) {}
  int64_t req(const std::string& key) const { return int64_t(f_.at(arch_ + "." + key).as_u64()); }
  int64_t opt(const std::string& key, int64_t fallback) const {
    const GgufValue* v = f_.find(arch_ + "." + key);
    return v ? v->as_i64() : fallback;
  }
  double opt_f(const std::string& key, double fallback) const {
    const GgufValue* v = f_.find(arch_ + "." + key);
    return v ? v->as_f64() : fallback;
  }
  const GgufValue* find(const std::string& key) const { return f_.find(arch_ + "." + key); }

 private:
  const GgufFile& f_;
  std::string arch_;
};

int to_int(const std::string& path, const std::string& key, int64_t v) {
  MF_CHECK(v >= 0 && v <= int64_t(1) << 30, path, ": metadata ", key, " = ", v, " is out of range");
  return int(v);
}

}  // namespace

ModelConfig config_from_gguf(const GgufFile& f) {
  const std::string& path = f.path();
  const std::string arch = f.at("general.architecture").as_string();
  MF_CHECK(arch == "llama" || arch == "qwen2", path, ": general.architecture '", arch,
           "' is not supported (llama, qwen2)");
  Meta m(f, arch);
  const auto meta_int = [&](const char* key, int64_t v) { return to_int(path, arch + "." + key, v); };
  ModelConfig c;
  c.num_experts = meta_int("expert_count", m.opt("expert_count", 0));
  c.model_type = arch == "qwen2" ? "qwen2" : (c.num_experts > 0 ? "mixtral" : "llama");
  MF_CHECK(arch == "llama" || c.num_experts == 0, path, ": MoE is only supported for the llama architecture");
  c.num_layers = meta_int("block_count", m.req("block_count"));
  c.hidden_size = meta_int("embedding_length", m.req("embedding_length"));
  c.intermediate_size = meta_int("feed_forward_length", m.req("feed_forward_length"));
  c.num_heads = meta_int("attention.head_count", m.req("attention.head_count"));
  c.num_kv_heads = meta_int("attention.head_count_kv", m.opt("attention.head_count_kv", c.num_heads));
  const int64_t rot = m.opt("rope.dimension_count", m.opt("attention.key_length", 0));
  if (rot > 0 && c.num_heads > 0 && rot != c.hidden_size / c.num_heads) c.head_dim = meta_int("rope.dimension_count", rot);
  c.max_position_embeddings = meta_int("context_length", m.opt("context_length", c.max_position_embeddings));
  c.rope_theta = m.opt_f("rope.freq_base", 10000.0);
  c.rms_norm_eps = float(m.opt_f("attention.layer_norm_rms_epsilon", 1e-5));
  if (const GgufValue* s = m.find("rope.scaling.type"))
    MF_CHECK(s->as_string() == "none", path, ": ", arch, ".rope.scaling.type '", s->as_string(), "' is not supported");
  MF_CHECK(!f.tensors().count("rope_freqs.weight"), path, ": rope_freqs.weight (RoPE frequency scaling) is not supported");
  if (c.num_experts > 0) {
    c.top_k = meta_int("expert_used_count", m.req("expert_used_count"));
    c.moe_intermediate_size = meta_int("expert_feed_forward_length",
                                      m.opt("expert_feed_forward_length", c.intermediate_size));
    c.routing.norm_topk_prob = true;
    if (const GgufValue* names = f.find(kGgufExpertNamesKey)) {
      try {
        c.expert_names = names->as_string_array();
      } catch (const Error& e) {
        fail(path, ": metadata ", kGgufExpertNamesKey, ": ", e.what());
      }
      MF_CHECK(int64_t(c.expert_names.size()) == c.num_experts, path, ": metadata ", kGgufExpertNamesKey, " has ",
               c.expert_names.size(), " names for ", c.num_experts, " experts");
    }
  }
  if (const GgufValue* toks = f.find("tokenizer.ggml.tokens")) {
    c.vocab_size = int(toks->as_array().size());
  } else {
    auto it = f.tensors().find("token_embd.weight");
    MF_CHECK(it != f.tensors().end(), path, ": no tokenizer.ggml.tokens and no token_embd.weight to size the vocabulary");
    c.vocab_size = int(it->second.dim(0));
  }
  c.tie_word_embeddings = !f.tensors().count("output.weight");
  c.attention_bias = arch == "qwen2";
  auto id = [&](const char* key) -> int {  // range-checked: a u64 id must not wrap into a small one
    const GgufValue* v = f.find(key);
    if (!v) return -1;
    const int64_t x = v->as_i64();
    MF_CHECK(x >= -1 && x < (int64_t(1) << 31), path, ": metadata ", key, " = ", x, " is not a token id");
    return int(x);
  };
  c.bos_token_id = id("tokenizer.ggml.bos_token_id");
  c.pad_token_id = id("tokenizer.ggml.padding_token_id");
  if (int eos = id("tokenizer.ggml.eos_token_id"); eos >= 0) c.eos_token_ids.push_back(eos);
  try {
    c.validate();
  } catch (const Error& e) {
    fail(path, ": ", e.what());
  }
  return c;
}

ModelWeights load_gguf_weights(const GgufFile& f) {
  ModelWeights w;
  w.config = config_from_gguf(f);
  w.source = f.path();
  const ModelConfig& c = w.config;
  // llama.cpp permutes Q/K only for the llama architecture (its "normal" RoPE); qwen2 files
  // keep HF order because GGML runs them with NEOX (rotate_half) RoPE.
  const bool permuted = f.at("general.architecture").as_string() == "llama";
  for (const auto& [name, t] : f.tensors()) {
    if (auto stacked = parse_stacked_experts(name)) {
      MF_CHECK(t.ndim() == 3 && t.dim(0) == c.num_experts, f.path(), ": tensor '", name, "' has shape ",
               shape_str(t.shape()), ", expected [", c.num_experts, ", rows, cols] (one slice per expert)");
      const MoeNames names = mixtral_moe_names(stacked->layer);
      for (int e = 0; e < c.num_experts; ++e)
        w.tensors[names.expert(e, stacked->part)] = t.slice_rows(e, e + 1).reshape({t.dim(1), t.dim(2)});
      continue;
    }
    std::optional<std::string> hf = gguf_to_hf_name(name);
    MF_CHECK(hf.has_value(), f.path(), ": tensor '", name, "' is not part of a llama-family model");
    Tensor v = t;
    if (permuted && name.ends_with("attn_q.weight")) v = unpermute_qk_rows(t, c.num_heads, f.path() + ": " + name);
    if (permuted && name.ends_with("attn_k.weight")) v = unpermute_qk_rows(t, c.num_kv_heads, f.path() + ": " + name);
    if (permuted && (name.ends_with("attn_q.bias") || name.ends_with("attn_k.bias")))
      v = unpermute_qk_rows(t, name.ends_with("attn_q.bias") ? c.num_heads : c.num_kv_heads, f.path() + ": " + name);
    w.tensors[*hf] = v;
  }
  return w;
}

}  // namespace mf

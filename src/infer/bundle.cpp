// Loading a model bundle. The eos set is the union of the tokenizer files', the config's and, under
// a ChatML template, <|im_end|>, so generation stops at a turn's end whatever eos the model names.
// The CPU LanguageModel returns the last position's logits and can tally routes per decode token.
#include "infer/bundle.h"

#include <algorithm>
#include <filesystem>

#include <omp.h>

#include "core/error.h"
#include "infer/model_files.h"
#include "kernels/cpu/softmax.h"

#include "model/config.h"
#include "model/kv_cache.h"
#include "model/load.h"
#include "model/transformer.h"
#include "model/weights.h"

namespace mf {
namespace fs = std::filesystem;

namespace {

// Transformer + KV cache for one sequence.
class TransformerModel : public LanguageModel {
 public:
  TransformerModel(std::unique_ptr<Transformer> t, int max_len, KVCacheTypes kv_cache)
      : t_(std::move(t)), cache_(t_->config(), max_len, 1, kv_cache), max_len_(max_len) {}
  std::vector<float> forward(std::span<const int32_t> tokens) override {
    MF_CHECK(cache_length() + int(tokens.size()) <= max_len_, "model: ", cache_length() + tokens.size(),
             " tokens exceed the context of ", max_len_);
    ForwardOptions fo;
    std::vector<Tensor> routes;
    const bool tally = tally_ && tokens.size() == 1 && t_->config().is_moe();
    if (tally) fo.router_logits = &routes;
    Tensor logits = t_->forward(tokens, 1, cache_, fo);
    if (tally) add_routes(routes);
    Tensor f = logits.dtype() == DType::F32 ? logits : logits.to_f32();
    const float* p = f.data<float>();
    int64_t vocab = f.dim(-1);
    return std::vector<float>(p + f.numel() - vocab, p + f.numel());
  }
  int cache_length() const override { return cache_.length(0); }
  void truncate(int length) override { cache_.truncate(0, length); }
  int context_length() const override { return max_len_; }
  int vocab_size() const override { return t_->config().vocab_size; }
  Transformer* cpu_transformer() override { return t_.get(); }
  void observe_routes(DecodeExpertShares* tally) override {
    tally_ = tally;
    if (!tally_) return;
    const ModelConfig& c = t_->config();
    tally_->experts = c.expert_names;
    for (int e = int(tally_->experts.size()); e < c.num_experts; ++e) tally_->experts.push_back("expert" + std::to_string(e));
    tally_->prob_sum.assign(size_t(c.num_experts), 0.0);
    tally_->tokens = 0;
  }

 private:
  void add_routes(const std::vector<Tensor>& routes) {
    std::vector<float> p;
    for (const Tensor& r : routes) {
      const size_t E = size_t(r.dim(1));  // this layer's experts (fewer in some layers of a pyramid MoE)
      p.assign(r.data<float>(), r.data<float>() + E);
      softmax_row(p.data(), int64_t(E));
      for (size_t e = 0; e < E; ++e) tally_->prob_sum[e] += p[e];
    }
    ++tally_->tokens;
  }

  std::unique_ptr<Transformer> t_;
  DecodeExpertShares* tally_ = nullptr;
  KVCache cache_;
  int max_len_;
};

}  // namespace

std::vector<std::pair<std::string, double>> DecodeExpertShares::top(size_t n) const {
  double total = 0;
  for (double v : prob_sum) total += v;
  std::vector<std::pair<std::string, double>> out;
  for (size_t e = 0; e < prob_sum.size(); ++e) out.emplace_back(experts[e], total > 0 ? prob_sum[e] / total : 0.0);
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  if (out.size() > n) out.resize(n);
  return out;
}

std::unique_ptr<LanguageModel> make_language_model(std::unique_ptr<Transformer> transformer, int max_len,
                                                   KVCacheTypes kv_cache) {
  MF_CHECK(max_len > 0, "make_language_model: max_len must be > 0, got ", max_len);
  return std::make_unique<TransformerModel>(std::move(transformer), max_len, kv_cache);
}

std::string describe_kv_cache(KVCacheTypes types) {
  if (types.keys == types.values) return std::string(dtype_name(types.keys));
  return std::string(dtype_name(types.keys)) + " keys, " + std::string(dtype_name(types.values)) + " values";
}

std::unique_ptr<ChatTemplate> model_chat_template(const Tokenizer& tok, const std::string& source,
                                                  const std::string& origin) {
  auto token_text = [&](int32_t id) {
    if (id < 0 || id >= tok.vocab_size()) return std::string();
    return tok.decode(std::span<const int32_t>(&id, 1), false);
  };
  return std::make_unique<ChatTemplate>(source.empty() ? default_chatml_template() : source, token_text(tok.bos_id),
                                        token_text(tok.eos_id), source.empty() ? "built-in ChatML" : origin);
}

ModelBundle load_model_bundle(const std::string& path, const LoadOptions& opts) {
  MF_CHECK(fs::exists(path), path, ": no such file or directory");
  MF_CHECK(opts.max_context > 0, "load_model: max_context must be > 0, got ", opts.max_context);
  if (opts.threads > 0) omp_set_num_threads(opts.threads);
  ModelBundle out;
  ModelSummary& s = out.summary;
  s.path = path;
  const bool gguf = !fs::is_directory(path) && is_gguf_path(path);
  s.format = gguf ? "gguf" : "hf";
  if (!gguf) {
    MF_CHECK(fs::is_directory(path), path, ": not a .gguf file nor a model directory");
    MF_CHECK(fs::exists(fs::path(path) / "config.json"), path, ": no config.json in the model directory");
  }
  TokenizerFiles tf = gguf ? load_gguf_tokenizer_files(path) : load_hf_tokenizer_files(path);
  out.tokenizer = std::move(tf.tokenizer);
  out.eos_ids = tf.eos_ids;
  s.tokenizer_kind = out.tokenizer->kind;
  s.tokenizer_vocab = out.tokenizer->vocab_size();

  out.has_own_chat_template = !tf.chat_template.empty();
  std::string tmpl = out.has_own_chat_template ? tf.chat_template : default_chatml_template();
  std::string origin = out.has_own_chat_template ? tf.chat_template_origin : "built-in ChatML (model has none)";
  out.chat_template = model_chat_template(*out.tokenizer, tmpl, origin);
  s.chat_template_family = out.has_own_chat_template ? out.chat_template->family() : "none";
  s.chat_template_origin = origin;
  // A ChatML conversation ends its turns with <|im_end|>; stop there even if eos differs.
  if (out.chat_template->family() == "chatml")
    if (auto id = out.tokenizer->token_to_id("<|im_end|>"))
      if (std::find(out.eos_ids.begin(), out.eos_ids.end(), *id) == out.eos_ids.end()) out.eos_ids.push_back(*id);

  ModelWeights w = load_model_weights(path);
  const ModelConfig& c = w.config;
  s.architecture = c.model_type;
  s.layers = c.num_layers;
  s.hidden = c.hidden_size;
  s.intermediate = c.is_moe() && c.moe_intermediate_size > 0 ? c.moe_intermediate_size : c.intermediate_size;
  s.heads = c.num_heads;
  s.kv_heads = c.num_kv_heads;
  s.head_dim = c.head_dim > 0 ? c.head_dim : (c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
  s.vocab = c.vocab_size;
  s.context = c.max_position_embeddings;
  s.experts = c.num_experts;
  s.top_k = c.top_k;
  s.moe_layout = describe_moe(c);
  s.params_total = count_parameters(c, false);
  s.params_active = count_parameters(c, true);
  for (const auto& [name, t] : w.tensors) s.weight_dtypes[std::string(dtype_name(t.dtype()))]++;
  for (int32_t id : c.eos_token_ids)
    if (std::find(out.eos_ids.begin(), out.eos_ids.end(), id) == out.eos_ids.end()) out.eos_ids.push_back(id);
  int ctx = std::min(opts.max_context, c.max_position_embeddings > 0 ? c.max_position_embeddings : opts.max_context);
  if (opts.make_model)
    if (auto model = opts.make_model(w, ctx)) {
      s.decode_activations = "bf16 (cuda)";
      s.kv_cache = "the CUDA model's own";
      out.model = std::move(model);
      return out;
    }
  auto transformer = std::make_unique<Transformer>(std::move(w));
  if (opts.pack_decode || opts.int8_decode) {
    const DecodeActivations act = opts.int8_decode ? DecodeActivations::int8 : DecodeActivations::fp32;
    s.decode_packed_bytes = transformer->pack_for_decode(act, opts.expert_cache_bytes);
    if (s.decode_packed_bytes > 0) s.decode_activations = opts.int8_decode ? "int8" : "fp32";
  }
  s.kv_cache = describe_kv_cache(opts.kv_cache);
  out.model = std::make_unique<TransformerModel>(std::move(transformer), ctx, opts.kv_cache);
  return out;
}

}  // namespace mf

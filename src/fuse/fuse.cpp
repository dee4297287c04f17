// Fusion and upcycling take llama and mistral models only: all their tensors have Mixtral names
// (qwen2's attention biases have none), and layer l's mlp gate/up/down become its expert e. Sources
// must match the skeleton in every dimension and, by default, token for token (one embedding).
#include "fuse/fuse.h"

#include <cmath>
#include <set>

#include "core/error.h"
#include "core/rng.h"
#include "infer/model_files.h"
#include "model/load.h"
#include "model/tensor_names.h"

namespace mf {

namespace {

constexpr int kMlpParts[] = {kMlpGate, kMlpUp, kMlpDown};

// A llama/mistral source's MLP tensors (the experts-to-be) are all under ".mlp.".
bool is_dense_mlp(const std::string& name) { return name.find(".mlp.") != std::string::npos; }

void check_fusable(const ModelConfig& c, const std::string& where) {
  MF_CHECK(!c.is_moe(), where, ": is already a MoE (", c.num_experts, " experts); fusion takes dense models");
  MF_CHECK(c.model_type == "llama" || c.model_type == "mistral", where, ": model_type '", c.model_type,
           "' cannot become a Mixtral layout (llama and mistral can; qwen2's attention biases have no Mixtral key)");
}

// Everything a shared tensor or an expert slot depends on must agree with the skeleton.
void check_same_architecture(const ModelConfig& a, const ModelConfig& b, const std::string& skeleton,
                             const std::string& source) {
  auto same = [&](const char* field, auto x, auto y) {
    MF_CHECK(x == y, source, ": ", field, " is ", y, " but the skeleton ", skeleton, " has ", x);
  };
  same("hidden_size", a.hidden_size, b.hidden_size);
  same("intermediate_size", a.intermediate_size, b.intermediate_size);
  same("num_hidden_layers", a.num_layers, b.num_layers);
  same("num_attention_heads", a.num_heads, b.num_heads);
  same("num_key_value_heads", a.num_kv_heads, b.num_kv_heads);
  same("head_dim", a.effective_head_dim(), b.effective_head_dim());
  same("vocab_size", a.vocab_size, b.vocab_size);
  same("rope_theta", a.rope_theta, b.rope_theta);
  same("rms_norm_eps", a.rms_norm_eps, b.rms_norm_eps);
  same("tie_word_embeddings", a.tie_word_embeddings, b.tie_word_embeddings);
}

void check_same_tokenizer(const Tokenizer& a, const Tokenizer& b, const std::string& skeleton,
                          const std::string& source) {
  MF_CHECK(a.vocab_size() == b.vocab_size(), source, ": tokenizer has ", b.vocab_size(), " tokens, the skeleton ",
           skeleton, "'s has ", a.vocab_size());
  for (int32_t id = 0; id < a.vocab_size(); ++id)
    MF_CHECK(a.token_bytes(id) == b.token_bytes(id), source, ": token ", id, " differs from the skeleton's (",
             skeleton, "); experts must share one tokenizer");
}

std::unique_ptr<Tokenizer> tokenizer_of(const std::string& path) { return std::move(load_tokenizer_files(path).tokenizer); }

ModelConfig moe_config(ModelConfig c, int experts, int top_k, std::vector<std::string> names) {
  c.model_type = "mixtral";
  c.num_experts = experts;
  c.top_k = top_k;
  c.moe_intermediate_size = c.intermediate_size;
  c.expert_names = std::move(names);
  c.routing = RoutingConfig{};  // the defaults: softmax top-k with renormalised gates, as Mixtral
  return c;
}

// An fp32 copy of one MLP matrix with the expert's noise added and, for the down projection,
// its residual scale applied (noise first, then scale, as mergekit-moe does).
Tensor noised_and_scaled(const Tensor& source, const ExpertSource& src, int part, Rng& rng) {
  Tensor t = source.to_f32();
  float* p = t.data<float>();
  if (src.noise_scale > 0)
    for (int64_t i = 0; i < t.numel(); ++i) p[i] += src.noise_scale * rng.normal();
  if (part == kMlpDown && src.residual_scale != 1)
    for (int64_t i = 0; i < t.numel(); ++i) p[i] *= src.residual_scale;
  return t;
}

void add_zero_routers(ModelWeights& w) {
  const ModelConfig& c = w.config;
  for (int l = 0; l < c.num_layers; ++l)
    w.tensors[mixtral_moe_names(l).router()] =
        Tensor::zeros(DType::F32, {int64_t(c.num_experts), int64_t(c.hidden_size)});
}

}  // namespace

ModelWeights fuse_experts(const FuseOptions& opts, const std::function<void(const std::string&)>& log) {
  MF_CHECK(!opts.experts.empty(), "fuse: no expert sources");
  MF_CHECK(opts.top_k >= 1 && opts.top_k <= int(opts.experts.size()), "fuse: top_k ", opts.top_k, " must be in [1, ",
           opts.experts.size(), "]");
  std::set<std::string> names;
  for (const auto& e : opts.experts) {
    MF_CHECK(!e.name.empty(), "fuse: expert ", e.path, " has no name");
    MF_CHECK(names.insert(e.name).second, "fuse: two experts are named '", e.name, "'");
  }
  if (log) log("skeleton " + opts.skeleton);
  ModelWeights skeleton = load_model_weights(opts.skeleton);
  check_fusable(skeleton.config, opts.skeleton);
  const ModelConfig base = skeleton.config;
  std::unique_ptr<Tokenizer> skeleton_tok = opts.check_tokenizers ? tokenizer_of(opts.skeleton) : nullptr;

  ModelWeights fused;
  fused.source = "fused(" + opts.skeleton + ")";
  std::vector<std::string> expert_names;
  for (const auto& e : opts.experts) expert_names.push_back(e.name);
  fused.config = moe_config(base, int(opts.experts.size()), opts.top_k, expert_names);
  // Shared tensors: the skeleton's (views), or fp32 sums to be divided at the end.
  for (const auto& [name, t] : skeleton.tensors) {
    if (is_dense_mlp(name)) continue;
    fused.tensors[name] = opts.average_shared ? t.to_f32() : t;
  }
  if (opts.average_shared)
    for (auto& [name, t] : fused.tensors) (void)name, t = Tensor::zeros(DType::F32, t.shape());

  for (size_t e = 0; e < opts.experts.size(); ++e) {
    const ExpertSource& src = opts.experts[e];
    if (log) log("expert " + std::to_string(e) + " '" + src.name + "' from " + src.path);
    // One source at a time: its MLP tensors stay as views, the rest is released when it goes.
    ModelWeights w = load_model_weights(src.path);
    check_fusable(w.config, src.path);
    check_same_architecture(base, w.config, opts.skeleton, src.path);
    if (skeleton_tok) check_same_tokenizer(*skeleton_tok, *tokenizer_of(src.path), opts.skeleton, src.path);
    MF_CHECK(std::isfinite(src.noise_scale) && src.noise_scale >= 0, src.path, ": noise_scale must be >= 0");
    MF_CHECK(std::isfinite(src.residual_scale), src.path, ": residual_scale must be a finite number");
    Rng noise(opts.noise_seed + e);
    for (const auto& [name, t] : w.tensors) {
      if (is_dense_mlp(name)) continue;
      auto it = fused.tensors.find(name);
      MF_CHECK(it != fused.tensors.end(), src.path, ": tensor '", name, "' is not in the skeleton ", opts.skeleton);
      MF_CHECK(it->second.shape() == t.shape(), src.path, ": tensor '", name, "' has shape ", shape_str(t.shape()),
               " but the skeleton's has ", shape_str(it->second.shape()));
      if (opts.average_shared) {
        const Tensor v = t.to_f32();
        float* acc = it->second.data<float>();
        const float* x = v.data<float>();
        for (int64_t i = 0; i < v.numel(); ++i) acc[i] += x[i];
      }
    }
    for (int l = 0; l < base.num_layers; ++l)
      for (int part : kMlpParts) {
        const std::string name = layer_names(l).mlp(part);
        auto it = w.tensors.find(name);
        MF_CHECK(it != w.tensors.end(), src.path, ": missing tensor '", name, "'");
        const Tensor& want = skeleton.tensors.at(name);
        MF_CHECK(it->second.shape() == want.shape(), src.path, ": tensor '", name, "' has shape ",
                 shape_str(it->second.shape()), " but the skeleton's has ", shape_str(want.shape()));
        fused.tensors[mixtral_moe_names(l).expert(int(e), part)] =
            src.noise_scale == 0 && src.residual_scale == 1 ? it->second : noised_and_scaled(it->second, src, part, noise);
      }
  }
  if (opts.average_shared) {
    const float inv = 1.0f / float(opts.experts.size());
    for (auto& [name, t] : fused.tensors) {
      if (name.find(".block_sparse_moe.experts.") != std::string::npos) continue;  // views of the sources
      float* p = t.data<float>();
      for (int64_t i = 0; i < t.numel(); ++i) p[i] *= inv;
    }
  }
  add_zero_routers(fused);
  return fused;
}

ModelWeights upcycle(const ModelWeights& dense, int num_experts, int top_k, float noise_std, uint64_t seed) {
  check_fusable(dense.config, dense.source.empty() ? "upcycle" : dense.source);
  MF_CHECK(num_experts >= 2, "upcycle: need at least 2 experts, got ", num_experts);
  MF_CHECK(top_k >= 1 && top_k <= num_experts, "upcycle: top_k ", top_k, " must be in [1, ", num_experts, "]");
  MF_CHECK(noise_std >= 0, "upcycle: noise must be >= 0");
  ModelWeights out;
  out.source = "upcycled(" + dense.source + ")";
  std::vector<std::string> names;
  for (int e = 0; e < num_experts; ++e) names.push_back("expert" + std::to_string(e));
  out.config = moe_config(dense.config, num_experts, top_k, names);
  for (const auto& [name, t] : dense.tensors)
    if (!is_dense_mlp(name)) out.tensors[name] = t;
  Rng rng(seed);
  for (int l = 0; l < dense.config.num_layers; ++l)
    for (int part : kMlpParts) {
      const std::string name = layer_names(l).mlp(part);
      auto it = dense.tensors.find(name);
      MF_CHECK(it != dense.tensors.end(), dense.source, ": missing tensor '", name, "'");
      for (int e = 0; e < num_experts; ++e) {
        if (noise_std == 0) {
          out.tensors[mixtral_moe_names(l).expert(e, part)] = it->second;  // a view: copies share storage
          continue;
        }
        Tensor t = it->second.to_f32();
        float* p = t.data<float>();
        double ss = 0;
        for (int64_t i = 0; i < t.numel(); ++i) ss += double(p[i]) * p[i];
        const float scale = noise_std * float(std::sqrt(ss / double(std::max<int64_t>(1, t.numel()))));
        for (int64_t i = 0; i < t.numel(); ++i) p[i] += scale * rng.normal();
        out.tensors[mixtral_moe_names(l).expert(e, part)] = std::move(t);
      }
    }
  add_zero_routers(out);
  return out;
}

}  // namespace mf

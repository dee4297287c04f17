#include "model/save.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "core/error.h"
#include "core/mapped_file.h"
#include "io/safetensors.h"
#include "kernels/cpu/quant.h"
#include "model/config_json.h"
#include "model/tensor_names.h"

namespace mf {

namespace {

const char* torch_dtype_name(DType t) {
  return t == DType::F16 ? "float16" : t == DType::BF16 ? "bfloat16" : "float32";
}

// An MoE layer's tensor names as the model holds them -> as the layout written names them.
void add_moe_renames(const ModelConfig& from, const ModelConfig& to, int layer,
                     std::map<std::string, std::string>& renames) {
  const MoeNames a = moe_names(from, layer), b = moe_names(to, layer);
  renames[a.router()] = b.router();
  renames[a.noise()] = b.noise();
  renames[a.selection_bias()] = b.selection_bias();
  renames[a.shared_gate()] = b.shared_gate();
  for (int part = 0; part < 3; ++part) {
    renames[a.shared(part)] = b.shared(part);
    for (int e = 0; e < from.experts_in_layer(layer); ++e) renames[a.expert(e, part)] = b.expert(e, part);
  }
}

// What Qwen2-MoE always has and the model may lack, as values that change nothing: zero q/k/v
// biases, and a shared expert of width 0 (its output is an empty sum, 0, whatever the gate says).
// Names already there (a directory written this way and read back holds them) are kept.
void add_qwen2_moe_zeros(const ModelConfig& c, std::vector<std::pair<std::string, Tensor>>& tensors) {
  const int64_t H = c.hidden_size, D = c.effective_head_dim();
  std::vector<std::pair<std::string, Tensor>> out;
  ModelConfig qwen = c;  // for Qwen2-MoE's tensor names
  qwen.model_type = "qwen2_moe";
  for (int l = 0; l < c.num_layers; ++l) {
    const LayerNames n = layer_names(l);
    if (!c.attention_bias) {
      out.emplace_back(n.attn_bias('q'), Tensor::zeros(DType::F32, {c.num_heads * D}));
      out.emplace_back(n.attn_bias('k'), Tensor::zeros(DType::F32, {c.num_kv_heads * D}));
      out.emplace_back(n.attn_bias('v'), Tensor::zeros(DType::F32, {c.num_kv_heads * D}));
    }
    if (c.layer_is_moe(l) && c.shared_expert_intermediate_size == 0) {
      const MoeNames m = moe_names(qwen, l);
      out.emplace_back(m.shared(kMlpGate), Tensor::zeros(DType::F32, {0, H}));
      out.emplace_back(m.shared(kMlpUp), Tensor::zeros(DType::F32, {0, H}));
      out.emplace_back(m.shared(kMlpDown), Tensor::zeros(DType::F32, {H, 0}));
      out.emplace_back(m.shared_gate(), Tensor::zeros(DType::F32, {1, H}));
    }
  }
  for (auto& [name, t] : out) {
    const bool present = std::any_of(tensors.begin(), tensors.end(), [&](const auto& x) { return x.first == name; });
    if (!present) tensors.emplace_back(name, std::move(t));
  }
}

Tensor in_dtype(const Tensor& t, const std::optional<DType>& dtype, bool buffer) {
  const bool plain = t.dtype() == DType::F32 || t.dtype() == DType::F16 || t.dtype() == DType::BF16;
  if (buffer) return t.dtype() == DType::F32 ? t : t.to_f32();
  if (!dtype) return plain ? t : t.to_f32();
  if (t.dtype() == *dtype) return t;
  const Tensor f = t.to_f32();
  if (*dtype == DType::F32) return f;
  Tensor out = Tensor::empty(*dtype, f.shape());
  quantize_row(*dtype, f.data<float>(), out.raw(), f.numel());  // round to nearest even
  return out;
}

}  // namespace

HfLayout save_model_weights(const ModelWeights& w, const std::string& dir, const HfSaveOptions& opts) {
  const HfLayout layout = choose_hf_layout(w.config);
  ModelConfig config = w.config;  // what config.json says (its model_type is the layout's)
  if (opts.dtype) config.torch_dtype = torch_dtype_name(*opts.dtype);
  ModelConfig written = w.config;  // names as the layout has them
  written.model_type = layout.model_type;
  std::map<std::string, std::string> renames;
  if (w.config.is_moe() && moe_names(w.config, 0).prefix != moe_names(written, 0).prefix)
    for (int l = 0; l < w.config.num_layers; ++l)
      if (w.config.layer_is_moe(l)) add_moe_renames(w.config, written, l, renames);

  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, t] : w.tensors) {
    if (name == kLmHeadName && w.config.tie_word_embeddings) continue;
    const auto renamed = renames.find(name);
    tensors.emplace_back(renamed == renames.end() ? name : renamed->second, in_dtype(t, opts.dtype, is_buffer(name)));
  }
  if (layout.qwen2_moe()) {
    const size_t before = tensors.size();
    add_qwen2_moe_zeros(w.config, tensors);
    for (size_t i = before; i < tensors.size(); ++i) tensors[i].second = in_dtype(tensors[i].second, opts.dtype, false);
  }
  std::filesystem::create_directories(dir);
  save_safetensors_dir(dir, tensors, opts.max_shard_bytes, {{"format", "pt"}});
  const std::string json = config_to_hf_json(config).dump(2) + "\n";
  write_file_atomic((std::filesystem::path(dir) / "config.json").string(), json.data(), json.size());
  return layout;
}

DType parse_hf_dtype(const std::string& name) {
  std::string s = name;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
  if (s == "f32" || s == "float32" || s == "fp32") return DType::F32;
  if (s == "f16" || s == "float16" || s == "fp16") return DType::F16;
  if (s == "bf16" || s == "bfloat16") return DType::BF16;
  fail("--dtype '", name, "' is not one of f32, f16, bf16");
}

}  // namespace mf

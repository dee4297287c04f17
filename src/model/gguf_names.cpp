#include "model/gguf_names.h"

#include <cstring>
#include <map>
#include <regex>

#include "core/error.h"
#include "model/tensor_names.h"

namespace mf {

std::optional<std::string> gguf_to_hf_name(const std::string& g) {
  static const std::map<std::string, std::string> kGlobal = {
      {"token_embd.weight", kEmbedTokensName},
      {"output_norm.weight", kFinalNormName},
      {"output.weight", kLmHeadName},
  };
  if (auto it = kGlobal.find(g); it != kGlobal.end()) return it->second;
  static const std::regex kBlock(R"(blk\.(\d+)\.([a-z_]+)(?:\.(\d+))?\.(weight|bias))");
  std::smatch m;
  if (!std::regex_match(g, m, kBlock)) return std::nullopt;
  const std::string layer = layer_prefix(std::stoi(m[1].str())), part = m[2].str(), kind = m[4].str();
  static const std::map<std::string, std::string> kLayer = {
      {"attn_norm", "input_layernorm"},    {"ffn_norm", "post_attention_layernorm"},
      {"attn_q", "self_attn.q_proj"},      {"attn_k", "self_attn.k_proj"},
      {"attn_v", "self_attn.v_proj"},      {"attn_output", "self_attn.o_proj"},
      {"ffn_gate", "mlp.gate_proj"},       {"ffn_up", "mlp.up_proj"},
      {"ffn_down", "mlp.down_proj"},
  };
  if (m[3].matched) {  // older Mixtral GGUFs: one tensor per expert, blk.N.ffn_gate.E.weight
    static const std::map<std::string, int> kExpert = {
        {"ffn_gate", kMlpGate}, {"ffn_up", kMlpUp}, {"ffn_down", kMlpDown}};
    auto it = kExpert.find(part);
    if (it == kExpert.end()) return std::nullopt;
    const MoeNames moe = mixtral_moe_names(std::stoi(m[1].str()));
    return moe.prefix + "experts." + m[3].str() + "." + moe.leaves[size_t(it->second)] + "." + kind;
  }
  if (part == "ffn_gate_inp") return mixtral_moe_names(std::stoi(m[1].str())).prefix + "gate." + kind;
  auto it = kLayer.find(part);
  if (it == kLayer.end()) return std::nullopt;
  return layer + it->second + "." + kind;
}

std::optional<StackedExperts> parse_stacked_experts(const std::string& g) {
  static const std::regex kExps(R"(blk\.(\d+)\.ffn_(gate|up|down)_exps\.weight)");
  std::smatch m;
  if (!std::regex_match(g, m, kExps)) return std::nullopt;
  static const std::map<std::string, int> kPart = {{"gate", kMlpGate}, {"up", kMlpUp}, {"down", kMlpDown}};
  return StackedExperts{std::stoi(m[1].str()), kPart.at(m[2].str())};
}

namespace {

// Moves whole rows between the two layouts; to_gguf picks the direction.
Tensor reorder_qk_rows(const Tensor& w, int n_head, const std::string& name, bool to_gguf) {
  MF_CHECK(w.ndim() == 2 || w.ndim() == 1, name, ": expected a matrix or a bias vector to reorder, got shape ",
           shape_str(w.shape()));
  const int64_t rows = w.dim(0);
  MF_CHECK(n_head > 0 && rows % (2 * int64_t(n_head)) == 0, name, ": ", rows,
           " rows do not split into ", n_head, " heads of an even size");
  const int64_t D = rows / n_head, half = D / 2;
  const size_t row_bytes = w.nbytes() / size_t(rows);
  Tensor out = Tensor::empty(w.dtype(), w.shape());
  const auto* src = static_cast<const uint8_t*>(w.raw());
  auto* dst = static_cast<uint8_t*>(out.raw());
  for (int64_t h = 0; h < n_head; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t gguf_row = h * D + 2 * i + j, hf_row = h * D + j * half + i;
        const int64_t from = to_gguf ? hf_row : gguf_row, to = to_gguf ? gguf_row : hf_row;
        std::memcpy(dst + size_t(to) * row_bytes, src + size_t(from) * row_bytes, row_bytes);
      }
  return out;
}

}  // namespace

Tensor unpermute_qk_rows(const Tensor& w, int n_head, const std::string& name) {
  return reorder_qk_rows(w, n_head, name, false);
}

Tensor permute_qk_rows(const Tensor& w, int n_head, const std::string& name) {
  return reorder_qk_rows(w, n_head, name, true);
}

}  // namespace mf

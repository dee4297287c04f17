// How llama.cpp's GGUF files name and lay out the tensors of a Llama-family model, and the
// inverse of its converter's Q/K row permutation.
#pragma once
#include <optional>
#include <string>

#include "core/tensor.h"

namespace mf {

// moeforge's own metadata key for a MoE's expert names (a fused model's "Coder", "Writer", ...),
// written by the GGUF export and read back at load; llama.cpp ignores it.
inline constexpr const char* kGgufExpertNamesKey = "moeforge.expert_names";

// The HF name of a 2-D/1-D GGUF tensor ("blk.3.attn_q.weight" -> "model.layers.3.self_attn.
// q_proj.weight"); `moe_prefix` is the HF container of a MoE layer's router and experts
// Stacked expert tensors (ffn_*_exps) are not mapped here; MoE layers map to Mixtral's layout.
// std::nullopt for a name outside the llama tensor set.
std::optional<std::string> gguf_to_hf_name(const std::string& gguf_name);

// For "blk.N.ffn_gate_exps.weight" etc: the layer and the expert matrix (kMlpGate, kMlpUp, kMlpDown).
struct StackedExperts {
  int layer = 0;
  int part = 0;
};
std::optional<StackedExperts> parse_stacked_experts(const std::string& gguf_name);

// llama.cpp's converter reorders the rows of each head of Q and K from HF's rotate_half
// layout (halves) to GGML's interleaved pairs: row h*D + 2i + j holds HF row h*D + j*D/2 + i.
// Returns a new tensor with HF row order. Rows are copied whole, so any dtype (including block
// formats, whose blocks run along the row) is handled without dequantizing.
Tensor unpermute_qk_rows(const Tensor& w, int n_head, const std::string& name);
// The converter's direction: HF row order -> GGML's (for writing GGUF files llama.cpp runs).
Tensor permute_qk_rows(const Tensor& w, int n_head, const std::string& name);

}  // namespace mf

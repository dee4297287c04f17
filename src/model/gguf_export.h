// Writing a model as a llama-architecture GGUF that llama.cpp and the `gguf` package read: the
// llama.* hyperparameters (with expert_count / expert_used_count for a MoE), the byte-level BPE
// vocabulary and chat template under tokenizer.*, and the tensors under llama.cpp's names: Q/K
// rows in GGML's order, a MoE layer's experts stacked as ffn_{gate,up,down}_exps, its router as
// ffn_gate_inp. moeforge's expert names go under moeforge.expert_names.
#pragma once
#include <map>
#include <string>

#include "model/gguf_quant_mix.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"

namespace mf {

struct GgufExportOptions {
  // Types of the weight matrices (embeddings, attention, MLP/experts): one type for all, or a
  // K-quant mix that chooses per tensor (model/gguf_quant_mix.h). Norms and routers stay F32.
  GgufQuantMix types = parse_gguf_quant_mix("f16");
  std::string name;           // general.name
  std::string chat_template;  // tokenizer.chat_template ("" = none)
};

// How many tensors of each GGML type ("F32", "Q4_K", ...) the file holds.
using GgufTypeCounts = std::map<std::string, int>;

// Throws mf::Error for a model the llama architecture cannot express (attention biases,
// shared experts, sliding windows) or a matrix whose rows do not split into blocks of a single
// --type.
GgufTypeCounts save_gguf_model(const ModelWeights& w, const BpeVocab& vocab, const std::string& path,
                               const GgufExportOptions& opts);

}  // namespace mf

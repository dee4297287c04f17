// Writing a model as a llama-architecture GGUF that llama.cpp and the `gguf` package read: the
// llama.* hyperparameters (with expert_count / expert_used_count for a MoE), the byte-level BPE
// vocabulary and chat template under tokenizer.*, and the tensors under llama.cpp's names: Q/K
// rows in GGML's order, a MoE layer's experts stacked as ffn_{gate,up,down}_exps, its router as
// ffn_gate_inp. moeforge's expert names go under moeforge.expert_names.
#pragma once
#include <string>

#include "core/dtype.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"

namespace mf {

struct GgufExportOptions {
  // Type of the weight matrices (embeddings, attention, MLP/experts): F32, F16, BF16, Q8_0,
  // Q4_0 or Q4_1. Norms and routers stay F32.
  DType matrix_type = DType::F16;
  std::string name;           // general.name
  std::string chat_template;  // tokenizer.chat_template ("" = none)
};

// Throws mf::Error for a model the llama architecture cannot express (attention biases,
// shared experts, sliding windows) or a matrix whose rows do not split into blocks.
void save_gguf_model(const ModelWeights& w, const BpeVocab& vocab, const std::string& path,
                     const GgufExportOptions& opts);

}  // namespace mf

// The weight types of a GGUF export: what `--type` names, the llama_ftype written as
// general.file_type, and the type of each tensor. A single type (f32, f16, bf16, q8_0, q4_0,
// q4_1) applies to every matrix; a K-quant mix (q4_K_S, q4_K_M, q5_K_S, q5_K_M, q6_K) chooses
// per tensor as llama.cpp's quantizer does (llama_tensor_get_type in src/llama-quant.cpp), so
// moeforge's q4_K_M file has the same tensor types as `llama-quantize ... Q4_K_M` would write.
#pragma once
#include <cstdint>
#include <string>

#include "core/dtype.h"

namespace mf {

enum class GgufMixKind { Single, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K };

struct GgufQuantMix {
  GgufMixKind kind = GgufMixKind::Single;
  DType base = DType::F16;  // the single type, or the mix's default (Q4_K, Q5_K, Q6_K)
  std::string name;         // as llama.cpp spells it: "F16", "Q8_0", "Q4_K_M", ...
  uint32_t file_type = 1;   // llama_ftype (llama.h): what general.file_type records
};

// "f16", "Q8_0", "q4_k_m", "Q4_K_M", ... (case-insensitive). Throws mf::Error listing the names.
GgufQuantMix parse_gguf_quant_mix(const std::string& name);
// The names parse_gguf_quant_mix accepts, for help texts.
const char* gguf_quant_mix_names();

// What the rule needs to know about one matrix.
enum class GgufRole { TokenEmbd, Output, AttnQ, AttnK, AttnV, AttnOutput, FfnGate, FfnUp, FfnDown };
struct GgufMatrix {
  GgufRole role;
  int layer = -1;          // -1 for token_embd / output
  int64_t row_length = 0;  // values per row (GGML's ne[0]); blocks must divide it
};
struct GgufModelShape {
  int num_layers = 0;
  int num_experts = 0;  // 0 for a dense model
  bool tied_embeddings = false;  // no output.weight: token_embd is also the output matrix
};

// The GGML type of one matrix under `mix`. A single type whose blocks do not divide the row is
// an error naming `tensor`; a K-quant mix falls back as llama.cpp does.
DType gguf_matrix_type(const GgufQuantMix& mix, const GgufModelShape& model, const GgufMatrix& m,
                       const std::string& tensor);

}  // namespace mf

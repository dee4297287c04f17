#include "model/gguf_quant_mix.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "core/error.h"

namespace mf {

namespace {

struct MixEntry {
  const char* name;
  GgufMixKind kind;
  DType base;
  uint32_t file_type;  // llama_ftype from llama.h (LLAMA_FTYPE_ALL_F32 = 0, LLAMA_FTYPE_MOSTLY_*)
};

constexpr std::array kMixes = {
    MixEntry{"F32", GgufMixKind::Single, DType::F32, 0},
    MixEntry{"F16", GgufMixKind::Single, DType::F16, 1},
    MixEntry{"BF16", GgufMixKind::Single, DType::BF16, 32},
    MixEntry{"Q8_0", GgufMixKind::Single, DType::Q8_0, 7},
    MixEntry{"Q4_0", GgufMixKind::Single, DType::Q4_0, 2},
    MixEntry{"Q4_1", GgufMixKind::Single, DType::Q4_1, 3},
    MixEntry{"Q4_K_S", GgufMixKind::Q4_K_S, DType::Q4_K, 14},
    MixEntry{"Q4_K_M", GgufMixKind::Q4_K_M, DType::Q4_K, 15},
    MixEntry{"Q5_K_S", GgufMixKind::Q5_K_S, DType::Q5_K, 16},
    MixEntry{"Q5_K_M", GgufMixKind::Q5_K_M, DType::Q5_K, 17},
    MixEntry{"Q6_K", GgufMixKind::Q6_K, DType::Q6_K, 18},
};

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::toupper(c)); });
  return s;
}

int64_t block_of(DType t) { return dtype_info(t).block_elems; }

// llama.cpp's "use more bits" layers: the first and last eighth, and every third in between.
bool use_more_bits(int layer, int layers) {
  return layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2;
}

// llama_tensor_get_type's choice before the shape fallback, for the K-quant mixes and the
// tensors a llama-architecture file has. (Its other branches concern other mixes, other
// architectures, the 70B model size, or user overrides moeforge does not offer.)
DType mix_choice(const GgufQuantMix& mix, const GgufModelShape& model, const GgufMatrix& m) {
  const GgufMixKind k = mix.kind;
  const bool eight_experts = model.num_experts == 8;
  // output.weight (and token_embd.weight when it doubles as the output): Q6_K, or Q8_0 when
  // the mix's own blocks do not divide the row.
  if (m.role == GgufRole::Output || (model.tied_embeddings && m.role == GgufRole::TokenEmbd))
    return m.row_length % block_of(mix.base) != 0 ? DType::Q8_0 : DType::Q6_K;
  switch (m.role) {
    case GgufRole::AttnV: {
      DType t = mix.base;
      // attn_v tensors are counted in file order, i.e. by layer.
      if ((k == GgufMixKind::Q4_K_M || k == GgufMixKind::Q5_K_M) && use_more_bits(m.layer, model.num_layers))
        t = DType::Q6_K;
      else if (k == GgufMixKind::Q4_K_S && m.layer < 4)
        t = DType::Q5_K;
      if (eight_experts) t = DType::Q8_0;  // Mixtral-8x: attn_v is small next to the experts
      return t;
    }
    case GgufRole::AttnK: return eight_experts ? DType::Q8_0 : mix.base;
    case GgufRole::AttnOutput:
      return eight_experts && (k == GgufMixKind::Q4_K_S || k == GgufMixKind::Q4_K_M) ? DType::Q5_K : mix.base;
    case GgufRole::FfnDown:  // dense ffn_down and a MoE layer's stacked ffn_down_exps alike
      if ((k == GgufMixKind::Q4_K_M || k == GgufMixKind::Q5_K_M) && use_more_bits(m.layer, model.num_layers))
        return DType::Q6_K;
      if (k == GgufMixKind::Q4_K_S && m.layer < model.num_layers / 8) return DType::Q5_K;
      return mix.base;
    default: return mix.base;  // token_embd (untied), attn_q, ffn_gate, ffn_up
  }
}

// llama.cpp's tensor_type_fallback: a 256-value K-quant whose blocks do not divide the row
// becomes a 32-value type of similar size (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0), and
// F16 when even 32 does not divide it. SmolLM2-135M's hidden size 576 = 2.25 x 256 sends
// every matrix that reads the residual stream this way.
DType shape_fallback(DType t, int64_t row_length) {
  if (row_length % block_of(t) == 0) return t;
  DType f = t == DType::Q4_K ? DType::Q5_0 : t == DType::Q5_K ? DType::Q5_1 : t == DType::Q6_K ? DType::Q8_0 : t;
  return row_length % block_of(f) == 0 ? f : DType::F16;
}

}  // namespace

const char* gguf_quant_mix_names() { return "f32, f16, bf16, q8_0, q4_0, q4_1, q4_K_S, q4_K_M, q5_K_S, q5_K_M, q6_K"; }

GgufQuantMix parse_gguf_quant_mix(const std::string& name) {
  const std::string u = upper(name);
  for (const MixEntry& e : kMixes)
    if (u == e.name) return GgufQuantMix{e.kind, e.base, e.name, e.file_type};
  fail("unknown GGUF type '", name, "' (one of: ", gguf_quant_mix_names(), ")");
}

DType gguf_matrix_type(const GgufQuantMix& mix, const GgufModelShape& model, const GgufMatrix& m,
                       const std::string& tensor) {
  if (mix.kind == GgufMixKind::Single) {
    MF_CHECK(m.row_length % block_of(mix.base) == 0, tensor, ": rows of ", m.row_length, " values do not split into ",
             dtype_name(mix.base), " blocks of ", block_of(mix.base), "; export with --type f16");
    return mix.base;
  }
  return shape_fallback(mix_choice(mix, model, m), m.row_length);
}

}  // namespace mf

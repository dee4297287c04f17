// The GGUF type rule (model/gguf_quant_mix): names as llama.cpp users type them, llama_ftype
// values, llama.cpp's Q4_K_M / Q5_K_M "more bits" layers on a 32-layer model, the Q4_K_S
// rules, the 8-expert rules, and the shape fallbacks. The expected values are llama.cpp's
// (llama.h, llama_tensor_get_type / tensor_type_fallback in src/llama-quant.cpp), written out.
#include <gtest/gtest.h>

#include <vector>

#include "core/error.h"
#include "model/gguf_quant_mix.h"

using namespace mf;

namespace {

DType type_of(const std::string& mix, GgufRole role, int layer, int64_t row = 4096, int layers = 32,
              int experts = 0, bool tied = false) {
  return gguf_matrix_type(parse_gguf_quant_mix(mix), GgufModelShape{layers, experts, tied},
                          GgufMatrix{role, layer, row}, "t");
}

}  // namespace

TEST(GgufQuantMix, NamesAndFileTypes) {
  const std::vector<std::pair<std::string, uint32_t>> want = {
      {"f32", 0},     {"F16", 1},     {"bf16", 32},   {"q8_0", 7},    {"Q4_0", 2},   {"q4_1", 3},
      {"Q4_K_S", 14}, {"q4_k_m", 15}, {"Q5_K_S", 16}, {"q5_K_M", 17}, {"Q6_K", 18},
  };
  for (const auto& [name, ftype] : want) {
    const GgufQuantMix m = parse_gguf_quant_mix(name);
    EXPECT_EQ(m.file_type, ftype) << name;
  }
  EXPECT_EQ(parse_gguf_quant_mix("q4_k_m").name, "Q4_K_M");
  EXPECT_EQ(parse_gguf_quant_mix("Q4_K_M").base, DType::Q4_K);
  EXPECT_EQ(parse_gguf_quant_mix("q5_k_s").base, DType::Q5_K);
  EXPECT_EQ(parse_gguf_quant_mix("q6_K").base, DType::Q6_K);
  try {
    parse_gguf_quant_mix("q4_k");
    FAIL() << "q4_k alone is not a mix llama.cpp names";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("q4_K_M"), std::string::npos) << e.what();
  }
}

TEST(GgufQuantMix, MoreBitsLayersOfQ4KM) {
  // 32 layers: the first 4, the last 4, and 4 + 3k + 2 in between.
  std::vector<int> q6;
  for (int l = 0; l < 32; ++l)
    if (type_of("q4_K_M", GgufRole::FfnDown, l) == DType::Q6_K) q6.push_back(l);
  EXPECT_EQ(q6, (std::vector<int>{0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31}));
  for (int l = 0; l < 32; ++l) {
    EXPECT_EQ(type_of("q4_K_M", GgufRole::AttnV, l), type_of("q4_K_M", GgufRole::FfnDown, l)) << l;
    const bool more = type_of("q4_K_M", GgufRole::FfnDown, l) == DType::Q6_K;
    EXPECT_EQ(type_of("q5_K_M", GgufRole::AttnV, l), more ? DType::Q6_K : DType::Q5_K) << l;
    EXPECT_EQ(type_of("q5_K_M", GgufRole::FfnDown, l), more ? DType::Q6_K : DType::Q5_K) << l;
    for (GgufRole r : {GgufRole::AttnQ, GgufRole::AttnK, GgufRole::AttnOutput, GgufRole::FfnGate, GgufRole::FfnUp})
      EXPECT_EQ(type_of("q4_K_M", r, l), DType::Q4_K) << l;
  }
  EXPECT_EQ(type_of("q5_K_M", GgufRole::FfnDown, 6), DType::Q6_K);
  EXPECT_EQ(type_of("q5_K_M", GgufRole::FfnDown, 7), DType::Q5_K);
  EXPECT_EQ(type_of("q5_K_S", GgufRole::FfnDown, 0), DType::Q5_K);
}

TEST(GgufQuantMix, Q4KSAndEmbeddings) {
  for (int l = 0; l < 32; ++l) {
    EXPECT_EQ(type_of("q4_K_S", GgufRole::AttnV, l), l < 4 ? DType::Q5_K : DType::Q4_K) << l;
    EXPECT_EQ(type_of("q4_K_S", GgufRole::FfnDown, l), l < 4 ? DType::Q5_K : DType::Q4_K) << l;
  }
  for (const char* mix : {"q4_K_S", "q4_K_M", "q5_K_S", "q5_K_M", "q6_K"}) {
    EXPECT_EQ(type_of(mix, GgufRole::Output, -1), DType::Q6_K) << mix;
    EXPECT_EQ(type_of(mix, GgufRole::TokenEmbd, -1, 4096, 32, 0, true), DType::Q6_K) << mix << " tied";
    EXPECT_EQ(type_of(mix, GgufRole::Output, -1, 576), DType::Q8_0) << mix << " 576-wide output";
  }
  EXPECT_EQ(type_of("q4_K_M", GgufRole::TokenEmbd, -1), DType::Q4_K);
  EXPECT_EQ(type_of("q5_K_M", GgufRole::TokenEmbd, -1), DType::Q5_K);
}

TEST(GgufQuantMix, EightExperts) {
  // Mixtral-8x: attn_v and attn_k in Q8_0, attn_output Q5_K under the Q4_K mixes.
  for (const char* mix : {"q4_K_S", "q4_K_M", "q5_K_M", "q6_K"}) {
    EXPECT_EQ(type_of(mix, GgufRole::AttnV, 10, 4096, 32, 8), DType::Q8_0) << mix;
    EXPECT_EQ(type_of(mix, GgufRole::AttnK, 10, 4096, 32, 8), DType::Q8_0) << mix;
  }
  EXPECT_EQ(type_of("q4_K_M", GgufRole::AttnOutput, 10, 4096, 32, 8), DType::Q5_K);
  EXPECT_EQ(type_of("q5_K_M", GgufRole::AttnOutput, 10, 4096, 32, 8), DType::Q5_K);
  EXPECT_EQ(type_of("q4_K_M", GgufRole::AttnOutput, 10, 4096, 32, 4), DType::Q4_K) << "4 experts: no rule";
  EXPECT_EQ(type_of("q4_K_M", GgufRole::AttnK, 10, 4096, 32, 4), DType::Q4_K);
}

TEST(GgufQuantMix, ShapeFallbacks) {
  EXPECT_EQ(type_of("q4_K_M", GgufRole::AttnQ, 10, 576), DType::Q5_0);
  EXPECT_EQ(type_of("q5_K_M", GgufRole::AttnQ, 10, 576), DType::Q5_1);
  EXPECT_EQ(type_of("q6_K", GgufRole::AttnQ, 10, 576), DType::Q8_0);
  EXPECT_EQ(type_of("q4_K_M", GgufRole::AttnV, 0, 576), DType::Q8_0) << "Q6_K chosen, then its fallback";
  EXPECT_EQ(type_of("q4_K_M", GgufRole::FfnUp, 10, 1000), DType::F16) << "not even 32 divides 1000";
  EXPECT_EQ(type_of("q4_K_M", GgufRole::FfnDown, 10, 1536), DType::Q4_K);
  // Single types do not fall back: they refuse, naming the tensor.
  EXPECT_EQ(type_of("q8_0", GgufRole::AttnQ, 0, 576), DType::Q8_0);
  EXPECT_THROW(type_of("q4_0", GgufRole::AttnQ, 0, 100), Error);
}

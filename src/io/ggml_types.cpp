#include "io/ggml_types.h"

#include "core/error.h"

namespace mf {

namespace {
// From ggml.h / gguf-py's GGML_QUANT_SIZES. Ids 4, 5, 31-33 and 36-38 were removed upstream.
constexpr GgmlTypeInfo kGgmlTypes[] = {
    {0, "F32", 1, 4},          {1, "F16", 1, 2},         {2, "Q4_0", 32, 18},
    {3, "Q4_1", 32, 20},       {6, "Q5_0", 32, 22},      {7, "Q5_1", 32, 24},
    {8, "Q8_0", 32, 34},       {9, "Q8_1", 32, 40},      {10, "Q2_K", 256, 84},
    {11, "Q3_K", 256, 110},    {12, "Q4_K", 256, 144},   {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},    {15, "Q8_K", 256, 292},   {16, "IQ2_XXS", 256, 66},
    {17, "IQ2_XS", 256, 74},   {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50},
    {20, "IQ4_NL", 32, 18},    {21, "IQ3_S", 256, 110},  {22, "IQ2_S", 256, 82},
    {23, "IQ4_XS", 256, 136},  {24, "I8", 1, 1},         {25, "I16", 1, 2},
    {26, "I32", 1, 4},         {27, "I64", 1, 8},        {28, "F64", 1, 8},
    {29, "IQ1_M", 256, 56},    {30, "BF16", 1, 2},       {34, "TQ1_0", 256, 54},
    {35, "TQ2_0", 256, 66},    {39, "MXFP4", 32, 17},
};

struct Pair {
  uint32_t id;
  DType dtype;
};
constexpr Pair kSupported[] = {
    {0, DType::F32},   {1, DType::F16},   {2, DType::Q4_0},  {3, DType::Q4_1},
    {6, DType::Q5_0},  {7, DType::Q5_1},  {8, DType::Q8_0},  {10, DType::Q2_K},
    {11, DType::Q3_K}, {12, DType::Q4_K}, {13, DType::Q5_K}, {14, DType::Q6_K},
    {15, DType::Q8_K}, {24, DType::I8},   {25, DType::I16},  {26, DType::I32},
    {27, DType::I64},  {28, DType::F64},  {30, DType::BF16},
};
}  // namespace

const GgmlTypeInfo* ggml_type_info(uint32_t id) {
  for (const GgmlTypeInfo& t : kGgmlTypes)
    if (t.id == id) return &t;
  return nullptr;
}

std::optional<DType> dtype_from_ggml(uint32_t id) {
  for (const Pair& p : kSupported)
    if (p.id == id) return p.dtype;
  return std::nullopt;
}

uint32_t ggml_type_of(DType t) {
  for (const Pair& p : kSupported)
    if (p.dtype == t) return p.id;
  fail("dtype ", dtype_name(t), " has no GGML type (GGUF cannot store it)");
}

std::string ggml_type_label(uint32_t id) {
  const GgmlTypeInfo* t = ggml_type_info(id);
  return cat(t ? t->name : "unknown", " (", id, ")");
}

}  // namespace mf

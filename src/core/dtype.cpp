#include "core/dtype.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <string>

#include "core/error.h"

namespace mf {

namespace {
constexpr std::array<DTypeInfo, 21> kInfos = {{
    {"F32", 1, 4, false},    {"F16", 1, 2, false},    {"BF16", 1, 2, false},
    {"F64", 1, 8, false},    {"I8", 1, 1, false},     {"I16", 1, 2, false},
    {"I32", 1, 4, false},    {"I64", 1, 8, false},    {"U8", 1, 1, false},
    {"BOOL", 1, 1, false},   {"Q4_0", 32, 18, true},  {"Q4_1", 32, 20, true},
    {"Q5_0", 32, 22, true},  {"Q5_1", 32, 24, true},  {"Q8_0", 32, 34, true},
    {"Q2_K", 256, 84, true}, {"Q3_K", 256, 110, true}, {"Q4_K", 256, 144, true},
    {"Q5_K", 256, 176, true}, {"Q6_K", 256, 210, true}, {"Q8_K", 256, 292, true},
}};
}  // namespace

const DTypeInfo& dtype_info(DType t) { return kInfos.at(static_cast<size_t>(t)); }

size_t dtype_bytes(DType t, int64_t n) {
  const DTypeInfo& info = dtype_info(t);
  MF_CHECK(n >= 0 && n % info.block_elems == 0, "element count ", n, " is not a multiple of the ",
           info.name, " block size ", info.block_elems);
  return size_t(n / info.block_elems) * size_t(info.block_bytes);
}

DType parse_dtype(std::string_view name) {
  std::string upper(name);
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return char(std::toupper(c)); });
  for (size_t i = 0; i < kInfos.size(); ++i)
    if (kInfos[i].name == upper) return static_cast<DType>(i);
  fail("unknown dtype '", name, "'");
}

}  // namespace mf

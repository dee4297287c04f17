// Element types, including block-quantized GGML formats. A quantized tensor's shape is
// its logical element shape; its rows are packed in blocks along the last dimension.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mf {

enum class DType : uint8_t {
  F32, F16, BF16, F64, I8, I16, I32, I64, U8, BOOL,
  Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K,
};

struct DTypeInfo {
  std::string_view name;
  int block_elems;   // elements per block (1 for plain types)
  int block_bytes;   // bytes per block
  bool quantized;
};

const DTypeInfo& dtype_info(DType t);
inline std::string_view dtype_name(DType t) { return dtype_info(t).name; }
inline bool is_quantized(DType t) { return dtype_info(t).quantized; }
// Bytes for `n` consecutive elements; n must be a multiple of the block size (checked).
size_t dtype_bytes(DType t, int64_t n);
// Parses "F32", "bf16", "Q4_K", ... (case-insensitive); throws mf::Error if unknown.
DType parse_dtype(std::string_view name);

}  // namespace mf

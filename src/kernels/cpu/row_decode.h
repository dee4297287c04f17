// Internal: rows of weight formats -> fp32, and the ggml block layouts the kernels read.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace mf::detail {

// ggml block layouts (32 weights per block, fp16 scales, packed without padding).
struct BlockQ4_0 { uint16_t d; uint8_t qs[16]; };           // w = (nibble - 8) * d
struct BlockQ4_1 { uint16_t d, m; uint8_t qs[16]; };        // w = nibble * d + m
struct BlockQ8_0 { uint16_t d; int8_t qs[32]; };            // w = q * d
static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ8_0) == 34);

// Converts n elements (a multiple of the block size) of format t starting at src to fp32.
// F32/F16/BF16/Q8_0/Q4_0/Q4_1 are decoded here (vectorised); other formats go through
// quant.h's dequantize_row (which throws mf::Error for formats it does not know).
void decode_row(DType t, const void* src, float* dst, int64_t n);

}  // namespace mf::detail

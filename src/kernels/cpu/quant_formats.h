// Per-format block kernels behind dequantize_row / quantize_row (quant.h). Each takes a whole
// number of blocks: `nb` blocks of the format's size. Internal to kernels/cpu.
#pragma once
#include <cstdint>
#include <cstring>

#include "core/half.h"

namespace mf::quant {

inline float load_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_f32(h);
}
inline void store_f16(uint8_t* p, float f) {
  uint16_t h = f32_to_fp16(f);
  std::memcpy(p, &h, 2);
}

// 32-element formats (quant_legacy.cpp).
void dequant_q4_0(const uint8_t* src, float* dst, int64_t nb);
void dequant_q4_1(const uint8_t* src, float* dst, int64_t nb);
void dequant_q5_0(const uint8_t* src, float* dst, int64_t nb);
void dequant_q5_1(const uint8_t* src, float* dst, int64_t nb);
void dequant_q8_0(const uint8_t* src, float* dst, int64_t nb);
void quant_q4_0(const float* src, uint8_t* dst, int64_t nb);
void quant_q4_1(const float* src, uint8_t* dst, int64_t nb);
void quant_q5_0(const float* src, uint8_t* dst, int64_t nb);
void quant_q5_1(const float* src, uint8_t* dst, int64_t nb);
void quant_q8_0(const float* src, uint8_t* dst, int64_t nb);

// 256-element K-quant super-blocks (quant_k.cpp).
void dequant_q2_k(const uint8_t* src, float* dst, int64_t nb);
void dequant_q3_k(const uint8_t* src, float* dst, int64_t nb);
void dequant_q4_k(const uint8_t* src, float* dst, int64_t nb);
void dequant_q5_k(const uint8_t* src, float* dst, int64_t nb);
void dequant_q6_k(const uint8_t* src, float* dst, int64_t nb);
void dequant_q8_k(const uint8_t* src, float* dst, int64_t nb);
// Encoders with a scale search (quant_k_encode.cpp).
void quant_q4_k(const float* src, uint8_t* dst, int64_t nb);
void quant_q5_k(const float* src, uint8_t* dst, int64_t nb);
void quant_q6_k(const float* src, uint8_t* dst, int64_t nb);

}  // namespace mf::quant

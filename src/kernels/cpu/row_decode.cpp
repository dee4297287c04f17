#include "kernels/cpu/row_decode.h"

#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "kernels/cpu/quant.h"
#include "kernels/cpu/simd.h"

namespace mf::detail {

namespace {

// Scales are read with memcpy: blocks sit at any 2-byte offset of a mapped file.
float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_f32(h);
}

void decode_q4_0(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, src += sizeof(BlockQ4_0), dst += 32) {
    const float d = half_at(src);
    const uint8_t* qs = src + 2;
    for (int i = 0; i < 16; ++i) {
      dst[i] = float(int(qs[i] & 0x0f) - 8) * d;
      dst[i + 16] = float(int(qs[i] >> 4) - 8) * d;
    }
  }
}

void decode_q4_1(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, src += sizeof(BlockQ4_1), dst += 32) {
    const float d = half_at(src), m = half_at(src + 2);
    const uint8_t* qs = src + 4;
    for (int i = 0; i < 16; ++i) {
      dst[i] = float(qs[i] & 0x0f) * d + m;
      dst[i + 16] = float(qs[i] >> 4) * d + m;
    }
  }
}

void decode_q8_0(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, src += sizeof(BlockQ8_0), dst += 32) {
    const float d = half_at(src);
    int8_t qs[32];
    std::memcpy(qs, src + 2, 32);
    for (int i = 0; i < 32; ++i) dst[i] = float(qs[i]) * d;
  }
}

void decode_f16(const uint8_t* src, float* dst, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(
                                  reinterpret_cast<const __m256i*>(src + 2 * i))));
#endif
  for (; i < n; ++i) dst[i] = half_at(src + 2 * i);
}

void decode_bf16(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    dst[i] = bf16_to_f32(h);
  }
}

}  // namespace

void decode_row(DType t, const void* src, float* dst, int64_t n) {
  const auto* bytes = static_cast<const uint8_t*>(src);
  switch (t) {
    case DType::F32: std::memcpy(dst, src, size_t(n) * sizeof(float)); return;
    case DType::F16: return decode_f16(bytes, dst, n);
    case DType::BF16: return decode_bf16(bytes, dst, n);
    case DType::Q4_0: return decode_q4_0(bytes, dst, n);
    case DType::Q4_1: return decode_q4_1(bytes, dst, n);
    case DType::Q8_0: return decode_q8_0(bytes, dst, n);
    default: break;
  }
  dequantize_row(t, src, dst, n);
}

}  // namespace mf::detail

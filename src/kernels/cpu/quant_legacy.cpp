// ggml's 32-element block formats. Layouts (bytes):
//   Q4_0 {f16 d; u8 qs[16]}            x = (nibble - 8) * d
//   Q4_1 {f16 d, m; u8 qs[16]}         x = nibble * d + m
//   Q5_0 {f16 d; u32 qh; u8 qs[16]}    x = (nibble | bit << 4) - 16) * d
//   Q5_1 {f16 d, m; u32 qh; u8 qs[16]} x = (nibble | bit << 4) * d + m
//   Q8_0 {f16 d; i8 qs[32]}            x = q * d
// In the 4/5-bit formats byte j's low nibble is element j and its high nibble element j + 16;
// bit j of qh is the fifth bit of element j.
#include <algorithm>
#include <cfloat>
#include <cmath>

#include "kernels/cpu/quant_formats.h"

namespace mf::quant {

namespace {
constexpr int kBlock = 32;

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;  // little-endian host, as the file format
}
void store_u32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }

// The element with the largest magnitude, keeping its sign (ties: first), as ggml picks it.
float signed_absmax(const float* x) {
  float amax = 0.f, max = 0.f;
  for (int j = 0; j < kBlock; ++j)
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  return max;
}

// ggml converts with a truncating int8 cast then MIN(hi, .); the same for every finite input,
// but defined for NaN/inf too (a float->int cast out of range is UB).
int trunc_clamp(float v, int hi) {
  if (!(v > 0.f)) return 0;
  if (v >= float(hi)) return hi;
  return int(v);
}

void min_max(const float* x, float& lo, float& hi) {
  lo = FLT_MAX;
  hi = -FLT_MAX;
  for (int j = 0; j < kBlock; ++j) {
    lo = std::min(lo, x[j]);
    hi = std::max(hi, x[j]);
  }
}
}  // namespace

void dequant_q4_0(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 18, y += kBlock) {
    float d = load_f16(b);
    const uint8_t* qs = b + 2;
    for (int j = 0; j < 16; ++j) {
      y[j] = d * float(int(qs[j] & 0x0F) - 8);
      y[j + 16] = d * float(int(qs[j] >> 4) - 8);
    }
  }
}

void dequant_q4_1(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 20, y += kBlock) {
    float d = load_f16(b), m = load_f16(b + 2);
    const uint8_t* qs = b + 4;
    for (int j = 0; j < 16; ++j) {
      y[j] = d * float(qs[j] & 0x0F) + m;
      y[j + 16] = d * float(qs[j] >> 4) + m;
    }
  }
}

void dequant_q5_0(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 22, y += kBlock) {
    float d = load_f16(b);
    uint32_t qh = load_u32(b + 2);
    const uint8_t* qs = b + 6;
    for (int j = 0; j < 16; ++j) {
      int lo = (qs[j] & 0x0F) | int((qh >> j) & 1u) << 4;
      int hi = (qs[j] >> 4) | int((qh >> (j + 16)) & 1u) << 4;
      y[j] = d * float(lo - 16);
      y[j + 16] = d * float(hi - 16);
    }
  }
}

void dequant_q5_1(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 24, y += kBlock) {
    float d = load_f16(b), m = load_f16(b + 2);
    uint32_t qh = load_u32(b + 4);
    const uint8_t* qs = b + 8;
    for (int j = 0; j < 16; ++j) {
      int lo = (qs[j] & 0x0F) | int((qh >> j) & 1u) << 4;
      int hi = (qs[j] >> 4) | int((qh >> (j + 16)) & 1u) << 4;
      y[j] = d * float(lo) + m;
      y[j + 16] = d * float(hi) + m;
    }
  }
}

void dequant_q8_0(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 34, y += kBlock) {
    float d = load_f16(b);
    const int8_t* qs = reinterpret_cast<const int8_t*>(b + 2);
    for (int j = 0; j < kBlock; ++j) y[j] = float(qs[j]) * d;
  }
}

void quant_q4_0(const float* x, uint8_t* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kBlock, b += 18) {
    float d = signed_absmax(x) / -8.f;
    float id = d != 0.f ? 1.f / d : 0.f;
    store_f16(b, d);
    for (int j = 0; j < 16; ++j) {
      int q0 = trunc_clamp(x[j] * id + 8.5f, 15);
      int q1 = trunc_clamp(x[j + 16] * id + 8.5f, 15);
      b[2 + j] = uint8_t(q0 | q1 << 4);
    }
  }
}

void quant_q4_1(const float* x, uint8_t* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kBlock, b += 20) {
    float lo, hi;
    min_max(x, lo, hi);
    float d = (hi - lo) / 15.f;
    float id = d != 0.f ? 1.f / d : 0.f;
    store_f16(b, d);
    store_f16(b + 2, lo);
    for (int j = 0; j < 16; ++j) {
      int q0 = trunc_clamp((x[j] - lo) * id + 0.5f, 15);
      int q1 = trunc_clamp((x[j + 16] - lo) * id + 0.5f, 15);
      b[4 + j] = uint8_t(q0 | q1 << 4);
    }
  }
}

void quant_q5_0(const float* x, uint8_t* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kBlock, b += 22) {
    float d = signed_absmax(x) / -16.f;
    float id = d != 0.f ? 1.f / d : 0.f;
    store_f16(b, d);
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      int q0 = trunc_clamp(x[j] * id + 16.5f, 31);
      int q1 = trunc_clamp(x[j + 16] * id + 16.5f, 31);
      b[6 + j] = uint8_t((q0 & 0x0F) | (q1 & 0x0F) << 4);
      qh |= uint32_t(q0 >> 4 & 1) << j | uint32_t(q1 >> 4 & 1) << (j + 16);
    }
    store_u32(b + 2, qh);
  }
}

void quant_q5_1(const float* x, uint8_t* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kBlock, b += 24) {
    float lo, hi;
    min_max(x, lo, hi);
    float d = (hi - lo) / 31.f;
    float id = d != 0.f ? 1.f / d : 0.f;
    store_f16(b, d);
    store_f16(b + 2, lo);
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      int q0 = trunc_clamp((x[j] - lo) * id + 0.5f, 31);
      int q1 = trunc_clamp((x[j + 16] - lo) * id + 0.5f, 31);
      b[8 + j] = uint8_t((q0 & 0x0F) | (q1 & 0x0F) << 4);
      qh |= uint32_t(q0 >> 4 & 1) << j | uint32_t(q1 >> 4 & 1) << (j + 16);
    }
    store_u32(b + 4, qh);
  }
}

void quant_q8_0(const float* x, uint8_t* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kBlock, b += 34) {
    float amax = 0.f;
    for (int j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(x[j]));
    float d = amax / 127.f;
    float id = d != 0.f ? 1.f / d : 0.f;
    store_f16(b, d);
    for (int j = 0; j < kBlock; ++j) {
      float q = std::round(x[j] * id);  // round half away from zero, as roundf
      b[2 + j] = uint8_t(int8_t(q == q ? std::clamp(q, -128.f, 127.f) : 0.f));
    }
  }
}

}  // namespace mf::quant

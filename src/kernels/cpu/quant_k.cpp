// ggml's K-quant super-blocks of 256 elements (layouts from ggml-common.h, byte offsets):
//   Q2_K {u8 scales[16]; u8 qs[64]; f16 d; f16 dmin}                 84 bytes
//   Q3_K {u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d}             110 bytes
//   Q4_K {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]}                144 bytes
//   Q5_K {f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}     176 bytes
//   Q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}               210 bytes
//   Q8_K {f32 d; i8 qs[256]; i16 bsums[16]}                          292 bytes
// Products are formed as (d * scale) * q - (dmin * min), the order ggml and gguf-py use, so
// results agree bit for bit.
#include "kernels/cpu/quant_formats.h"

namespace mf::quant {

namespace {
constexpr int kQK = 256;

// Q4_K/Q5_K pack eight 6-bit (scale, min) pairs into 12 bytes (ggml's get_scale_min_k4).
void scale_min_k4(int j, const uint8_t* q, uint8_t& sc, uint8_t& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = uint8_t((q[j + 4] & 0x0F) | (q[j - 4] >> 6) << 4);
    m = uint8_t((q[j + 4] >> 4) | (q[j] >> 6) << 4);
  }
}
}  // namespace

void dequant_q2_k(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 84) {
    const uint8_t* scales = b;
    const uint8_t* q = b + 16;
    float d = load_f16(b + 80), dmin = load_f16(b + 82);
    int is = 0;
    for (int n = 0; n < kQK; n += 128, q += 32) {
      for (int shift = 0; shift < 8; shift += 2) {
        for (int half = 0; half < 2; ++half) {
          uint8_t sc = scales[is++];
          float dl = d * float(sc & 0x0F), ml = dmin * float(sc >> 4);
          const uint8_t* qq = q + 16 * half;
          for (int l = 0; l < 16; ++l) *y++ = dl * float((qq[l] >> shift) & 3) - ml;
        }
      }
    }
  }
}

void dequant_q3_k(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 110) {
    const uint8_t* hm = b;
    const uint8_t* q = b + 32;
    const uint8_t* packed = b + 96;
    float d_all = load_f16(b + 108);
    // Sixteen 6-bit signed scales: low 4 bits in bytes 0..7 (two per byte), high 2 bits in
    // bytes 8..11 (four per byte); stored with a +32 bias.
    int scales[16];
    for (int j = 0; j < 16; ++j) {
      int lo = (packed[j % 8] >> (4 * (j / 8))) & 0x0F;
      int hi = (packed[8 + j % 4] >> (2 * (j / 4))) & 0x03;
      scales[j] = (lo | hi << 4) - 32;
    }
    int is = 0;
    uint8_t m = 1;
    for (int n = 0; n < kQK; n += 128, q += 32) {
      for (int shift = 0; shift < 8; shift += 2, m = uint8_t(m << 1)) {
        for (int half = 0; half < 2; ++half) {
          float dl = d_all * float(scales[is++]);
          const uint8_t* qq = q + 16 * half;
          const uint8_t* hh = hm + 16 * half;
          for (int l = 0; l < 16; ++l)
            *y++ = dl * float(int((qq[l] >> shift) & 3) - ((hh[l] & m) ? 0 : 4));
        }
      }
    }
  }
}

void dequant_q4_k(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 144) {
    float d = load_f16(b), dmin = load_f16(b + 2);
    const uint8_t* scales = b + 4;
    const uint8_t* q = b + 16;
    for (int j = 0, is = 0; j < kQK; j += 64, is += 2, q += 32) {
      uint8_t sc, m;
      scale_min_k4(is, scales, sc, m);
      float d1 = d * float(sc), m1 = dmin * float(m);
      scale_min_k4(is + 1, scales, sc, m);
      float d2 = d * float(sc), m2 = dmin * float(m);
      for (int l = 0; l < 32; ++l) *y++ = d1 * float(q[l] & 0x0F) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * float(q[l] >> 4) - m2;
    }
  }
}

void dequant_q5_k(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 176) {
    float d = load_f16(b), dmin = load_f16(b + 2);
    const uint8_t* scales = b + 4;
    const uint8_t* qh = b + 16;
    const uint8_t* ql = b + 48;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0, is = 0; j < kQK; j += 64, is += 2, ql += 32) {
      uint8_t sc, m;
      scale_min_k4(is, scales, sc, m);
      float d1 = d * float(sc), m1 = dmin * float(m);
      scale_min_k4(is + 1, scales, sc, m);
      float d2 = d * float(sc), m2 = dmin * float(m);
      for (int l = 0; l < 32; ++l) *y++ = d1 * float((ql[l] & 0x0F) + (qh[l] & u1 ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * float((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
      u1 = uint8_t(u1 << 2);
      u2 = uint8_t(u2 << 2);
    }
  }
}

void dequant_q6_k(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 210) {
    const uint8_t* ql = b;
    const uint8_t* qh = b + 128;
    const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
    float d = load_f16(b + 208);
    for (int n = 0; n < kQK; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        int is = l / 16;
        int q1 = int((ql[l] & 0x0F) | ((qh[l] >> 0) & 3) << 4) - 32;
        int q2 = int((ql[l + 32] & 0x0F) | ((qh[l] >> 2) & 3) << 4) - 32;
        int q3 = int((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
        int q4 = int((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
        y[l] = d * float(sc[is]) * float(q1);
        y[l + 32] = d * float(sc[is + 2]) * float(q2);
        y[l + 64] = d * float(sc[is + 4]) * float(q3);
        y[l + 96] = d * float(sc[is + 6]) * float(q4);
      }
    }
  }
}

void dequant_q8_k(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 292, y += kQK) {
    float d;
    std::memcpy(&d, b, 4);
    const int8_t* qs = reinterpret_cast<const int8_t*>(b + 4);
    for (int j = 0; j < kQK; ++j) y[j] = d * float(qs[j]);
  }
}

}  // namespace mf::quant

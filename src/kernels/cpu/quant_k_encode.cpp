// fp32 -> Q4_K / Q5_K / Q6_K super-blocks of 256 values (layouts in quant_k.cpp's header
// comment). Each sub-block's scale (and offset) comes from a weighted search
// (quant_k_search.h); the sub-block scales are then quantized against the super-block's fp16
// d (and dmin), trying the neighbouring integer scales too, and the values are rounded with
// exactly the step and offset the decoder will compute, so the stored levels fit the stored
// scales rather than the unquantized ones.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/quant_formats.h"
#include "kernels/cpu/quant_k_search.h"

namespace mf::quant {

namespace {
constexpr int kQK = 256;
constexpr float kMaxF16 = 65504.0f;

// fp16 as stored, read back: the decoder multiplies by the rounded value, so do we.
float stored_f16(uint8_t* p, float v) {
  store_f16(p, std::clamp(v, -kMaxF16, kMaxF16));
  return load_f16(p);
}

// Q4_K / Q5_K: 8 sub-blocks of 32 with an unsigned 6-bit scale and offset each, levels 0..nmax.
// Writes d, dmin and the 12 packed scale bytes at `head` (4 + 12 bytes) and the levels to L.
void encode_affine_superblock(const float* x, int nmax, uint8_t* head, uint8_t* L) {
  constexpr int kSub = 32;
  float scale[8], offset[8], w[kSub];
  float max_scale = 0, max_offset = 0;
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + kSub * j;
    // Weights: the sub-block's RMS plus the value's magnitude, so that large values (which
    // dominate a dot product) fit best without ignoring the small ones.
    float sum_sq = 0;
    for (int i = 0; i < kSub; ++i) sum_sq += xs[i] * xs[i];
    const float rms = std::sqrt(sum_sq / kSub);
    for (int i = 0; i < kSub; ++i) w[i] = rms + std::fabs(xs[i]);
    scale[j] = fit_scale_offset(xs, w, kSub, nmax, &offset[j], L + kSub * j);
    max_scale = std::max(max_scale, scale[j]);
    max_offset = std::max(max_offset, offset[j]);
  }
  const float d = stored_f16(head, max_scale / 63.0f);
  const float dmin = stored_f16(head + 2, max_offset / 63.0f);
  uint8_t sc[8], mn[8];
  uint8_t trial[kSub];
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + kSub * j;
    float sum_sq = 0;
    for (int i = 0; i < kSub; ++i) sum_sq += xs[i] * xs[i];
    const float rms = std::sqrt(sum_sq / kSub);
    for (int i = 0; i < kSub; ++i) w[i] = rms + std::fabs(xs[i]);
    const int s0 = d > 0 ? std::clamp(round_to_int(scale[j] / d), 0, 63) : 0;
    const int m0 = dmin > 0 ? std::clamp(round_to_int(offset[j] / dmin), 0, 63) : 0;
    // A sub-block whose scale rounds to 0 (next to a much larger one in its super-block) is
    // best served by the offset nearest its weighted mean, which the fitted offset is not.
    double sw = 0, swx = 0;
    for (int i = 0; i < kSub; ++i) {
      sw += w[i];
      swx += double(w[i]) * xs[i];
    }
    const int m_mean = dmin > 0 && sw > 0 ? std::clamp(round_to_int(float(-swx / sw) / dmin), 0, 63) : 0;
    const int offsets[4] = {m0 - 1, m0, m0 + 1, m_mean};
    double best = INFINITY;
    sc[j] = uint8_t(s0);
    mn[j] = uint8_t(m0);
    for (int s = std::max(0, s0 - 1); s <= std::min(63, s0 + 1); ++s) {
      for (int m : offsets) {
        if (m < 0 || m > 63) continue;
        const float step = d * float(s), off = dmin * float(m);  // as the decoder forms them
        const float inv = step > 0 ? 1.0f / step : 0.0f;
        double err = 0;
        for (int i = 0; i < kSub; ++i) {
          const int l = step > 0 ? std::clamp(round_to_int((xs[i] + off) * inv), 0, nmax) : 0;
          trial[i] = uint8_t(l);
          const double e = double(step * float(l) - off) - double(xs[i]);
          err += double(w[i]) * e * e;
        }
        if (err < best) {
          best = err;
          sc[j] = uint8_t(s);
          mn[j] = uint8_t(m);
          std::copy(trial, trial + kSub, L + kSub * j);
        }
      }
    }
  }
  // 12 bytes: bytes 0..3 scales 0..3 and bytes 4..7 offsets 0..3 (6 bits each, their top two
  // bits holding the high bits of scales/offsets 4..7), bytes 8..11 the low nibbles of
  // scales 4..7 (low) and offsets 4..7 (high).
  uint8_t* packed = head + 4;
  for (int j = 0; j < 4; ++j) {
    packed[j] = uint8_t(sc[j] | (sc[j + 4] >> 4) << 6);
    packed[j + 4] = uint8_t(mn[j] | (mn[j + 4] >> 4) << 6);
    packed[j + 8] = uint8_t((sc[j + 4] & 0x0F) | (mn[j + 4] & 0x0F) << 4);
  }
}

}  // namespace

void quant_q4_k(const float* x, uint8_t* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK, b += 144) {
    uint8_t L[kQK];
    encode_affine_superblock(x, 15, b, L);
    // Pairs of sub-blocks share 32 bytes: sub-block 2k in the low nibbles, 2k+1 in the high.
    uint8_t* q = b + 16;
    for (int j = 0; j < kQK; j += 64, q += 32)
      for (int l = 0; l < 32; ++l) q[l] = uint8_t(L[j + l] | L[j + l + 32] << 4);
  }
}

void quant_q5_k(const float* x, uint8_t* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK, b += 176) {
    uint8_t L[kQK];
    encode_affine_superblock(x, 31, b, L);
    // Low four bits as in Q4_K; the fifth bit of value j + 64k (+32) is bit 2k (2k+1) of qh[j].
    uint8_t* qh = b + 16;
    uint8_t* ql = b + 48;
    std::memset(qh, 0, 32);
    for (int k = 0; k < 4; ++k, ql += 32) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t lo = L[64 * k + l], hi = L[64 * k + l + 32];
        ql[l] = uint8_t((lo & 0x0F) | (hi & 0x0F) << 4);
        qh[l] = uint8_t(qh[l] | (lo >> 4) << (2 * k) | (hi >> 4) << (2 * k + 1));
      }
    }
  }
}

void quant_q6_k(const float* x, uint8_t* b, int64_t nb) {
  constexpr int kSub = 16, kNmax = 32;
  for (int64_t i = 0; i < nb; ++i, x += kQK, b += 210) {
    std::memset(b, 0, 210);
    int8_t L[kQK];
    float scale[16];
    float peak = 0;  // the sub-block scale of largest magnitude, with its sign
    for (int j = 0; j < 16; ++j) {
      scale[j] = fit_signed_scale(x + kSub * j, kSub, kNmax, L + kSub * j);
      if (std::fabs(scale[j]) > std::fabs(peak)) peak = scale[j];
    }
    if (peak == 0) continue;  // all zeros: d = 0 and zero bytes decode to 0
    // The largest scale becomes -128: int8's extra negative step is one more bit of range.
    // (d keeps the sign that makes that work, as the signed levels do in fit_signed_scale.)
    const float d = stored_f16(b + 208, -peak / 128.0f);
    int8_t* sc = reinterpret_cast<int8_t*>(b + 192);
    for (int j = 0; j < 16; ++j) {
      const float* xs = x + kSub * j;
      const int s0 = d != 0 ? std::clamp(round_to_int(scale[j] / d), -128, 127) : 0;
      double best = INFINITY;
      int8_t trial[kSub];
      sc[j] = int8_t(s0);
      for (int s = std::max(-128, s0 - 1); s <= std::min(127, s0 + 1); ++s) {
        const float step = d * float(s);  // as the decoder forms it
        const float inv = step != 0 ? 1.0f / step : 0.0f;
        double err = 0;
        for (int k = 0; k < kSub; ++k) {
          const int l = step != 0 ? std::clamp(round_to_int(xs[k] * inv), -kNmax, kNmax - 1) : 0;
          trial[k] = int8_t(l);
          const double e = double(step * float(l)) - double(xs[k]);
          err += double(xs[k]) * xs[k] * e * e;  // the weights of fit_signed_scale
        }
        if (err < best) {
          best = err;
          sc[j] = int8_t(s);
          std::copy(trial, trial + kSub, L + kSub * j);
        }
      }
    }
    // Per 128 values: ql[l] holds values l (low nibble) and l+64 (high), ql[l+32] values l+32
    // and l+96; qh[l] the top two bits of l, l+32, l+64, l+96 at bits 0, 2, 4, 6.
    uint8_t* ql = b;
    uint8_t* qh = b + 128;
    for (int h = 0; h < kQK; h += 128, ql += 64, qh += 32) {
      for (int l = 0; l < 32; ++l) {
        uint8_t q[4];
        for (int r = 0; r < 4; ++r) q[r] = uint8_t(L[h + l + 32 * r] + kNmax);
        ql[l] = uint8_t((q[0] & 0x0F) | (q[2] & 0x0F) << 4);
        ql[l + 32] = uint8_t((q[1] & 0x0F) | (q[3] & 0x0F) << 4);
        qh[l] = uint8_t(q[0] >> 4 | (q[1] >> 4) << 2 | (q[2] >> 4) << 4 | (q[3] >> 4) << 6);
      }
    }
  }
}

}  // namespace mf::quant

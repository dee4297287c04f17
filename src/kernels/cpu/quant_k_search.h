// Scale searches for the K-quant encoders (quant_k_encode.cpp). Rounding every value with the
// scale that maps the sub-block's range onto the integer range (plain min/max rounding) wastes
// levels on one extreme value; these searches try nearby scales, refit scale (and offset) by
// weighted least squares on the rounded levels, and keep the fit with the smallest weighted
// squared error. Internal to kernels/cpu.
#pragma once
#include <cstdint>

namespace mf::quant {

// Round to nearest, ties away from zero, as one integer (inputs are bounded by the callers).
inline int round_to_int(float v) { return int(v >= 0 ? v + 0.5f : v - 0.5f); }

// x[i] ~ scale * levels[i] - offset with levels in 0..nmax, scale >= 0 and offset >= 0 (the
// sub-block's range is widened to include 0: Q4_K/Q5_K store the offset as an unsigned 6-bit
// multiple of one positive dmin). Minimizes sum w[i] * err[i]^2 over scale candidates around
// nmax / (max - min). Returns the scale; writes the offset and the levels.
float fit_scale_offset(const float* x, const float* w, int n, int nmax, float* offset, uint8_t* levels);

// x[i] ~ scale * levels[i] with levels in -nmax..nmax-1 (Q6_K: -32..31). The scale is signed:
// the value of largest magnitude maps onto -nmax, the side with one more level. Minimizes
// sum x[i]^2 * err[i]^2 (large values matter most) over scale candidates around -nmax / that
// value. Returns the scale (0 for an all-zero sub-block); writes the levels.
float fit_signed_scale(const float* x, int n, int nmax, int8_t* levels);

}  // namespace mf::quant

#include "kernels/cpu/quant_k_search.h"

#include <algorithm>
#include <cmath>

namespace mf::quant {

namespace {

// Below this a sub-block is treated as zeros: its scale would be lost in fp16 anyway.
constexpr float kZeroMagnitude = 1e-30f;

// Candidate inverse scales are (nmax + kFirstShift + kShiftStep * k) / range for k = 0..kShifts:
// from one level less than min/max rounding to one level more. Narrower ranges clip the extremes
// and gain resolution in the middle, where most values of a weight matrix sit.
constexpr float kFirstShift = -1.0f;
constexpr float kShiftStep = 0.1f;
constexpr int kShifts = 20;
// After the candidates, the best fit's own scale is used to round again and refit, at most this
// many times (each stops as soon as it does not help).
constexpr int kRefinements = 2;

struct AffineFit {
  float scale = 0, offset = 0;      // x ~ scale * level - offset
  double error = INFINITY;          // sum of w * (x - fitted)^2
};

double affine_error(const float* x, const float* w, const uint8_t* levels, int n, float scale, float offset) {
  double e = 0;
  for (int i = 0; i < n; ++i) {
    const double d = double(scale * float(levels[i]) - offset) - double(x[i]);
    e += double(w[i]) * d * d;
  }
  return e;
}

void round_affine(const float* x, int n, int nmax, float inv_scale, float low, uint8_t* levels) {
  for (int i = 0; i < n; ++i) levels[i] = uint8_t(std::clamp(round_to_int(inv_scale * (x[i] - low)), 0, nmax));
}

// Weighted least squares for x ~ scale * level + c over fixed levels. c > 0 cannot be stored
// (the offset is unsigned), so then c = 0 and the scale is refit alone.
AffineFit refit_affine(const float* x, const float* w, const uint8_t* levels, int n) {
  double sw = 0, sl = 0, sll = 0, sx = 0, sxl = 0;
  for (int i = 0; i < n; ++i) {
    const double wi = w[i], l = levels[i];
    sw += wi;
    sl += wi * l;
    sll += wi * l * l;
    sx += wi * x[i];
    sxl += wi * x[i] * l;
  }
  AffineFit f;
  const double det = sw * sll - sl * sl;
  if (!(det > 0)) return f;  // one distinct level: nothing to fit
  double scale = (sw * sxl - sx * sl) / det;
  double c = (sll * sx - sl * sxl) / det;
  if (c > 0) {
    c = 0;
    scale = sxl / sll;
  }
  if (!(scale > 0)) return f;
  f.scale = float(scale);
  f.offset = float(-c);
  f.error = affine_error(x, w, levels, n, f.scale, f.offset);
  return f;
}

}  // namespace

float fit_scale_offset(const float* x, const float* w, int n, int nmax, float* offset, uint8_t* levels) {
  float low = x[0], high = x[0];
  for (int i = 1; i < n; ++i) {
    low = std::min(low, x[i]);
    high = std::max(high, x[i]);
  }
  low = std::min(low, 0.0f);
  if (!(high - low > kZeroMagnitude)) {  // constant (and <= 0 once widened to 0): the offset alone
    std::fill(levels, levels + n, uint8_t(0));
    *offset = -low;
    return 0;
  }
  const float range = high - low;
  // Plain min/max rounding is the fit to beat.
  AffineFit best;
  best.scale = range / float(nmax);
  best.offset = -low;
  round_affine(x, n, nmax, float(nmax) / range, low, levels);
  best.error = affine_error(x, w, levels, n, best.scale, best.offset);

  uint8_t trial[256];
  for (int k = 0; k <= kShifts; ++k) {
    const float inv = (float(nmax) + kFirstShift + kShiftStep * float(k)) / range;
    round_affine(x, n, nmax, inv, low, trial);
    const AffineFit f = refit_affine(x, w, trial, n);
    if (f.error < best.error) {
      best = f;
      std::copy(trial, trial + n, levels);
    }
  }
  for (int r = 0; r < kRefinements && best.scale > 0; ++r) {
    round_affine(x, n, nmax, 1.0f / best.scale, -best.offset, trial);
    const AffineFit f = refit_affine(x, w, trial, n);
    if (!(f.error < best.error)) break;
    best = f;
    std::copy(trial, trial + n, levels);
  }
  *offset = best.offset;
  return best.scale;
}

float fit_signed_scale(const float* x, int n, int nmax, int8_t* levels) {
  float peak = 0, peak_abs = 0;  // the value of largest magnitude, with its sign
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > peak_abs) {
      peak_abs = std::fabs(x[i]);
      peak = x[i];
    }
  if (peak_abs < kZeroMagnitude) {
    std::fill(levels, levels + n, int8_t(0));
    return 0;
  }
  // With levels fixed the best scale is sxl / sll and the error sum(w x^2) - sxl^2 / sll, so the
  // best candidate is the one with the largest sxl^2 / sll.
  auto round_and_score = [&](float inv, int8_t* out, double& sxl, double& sll) {
    sxl = sll = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(round_to_int(inv * x[i]), -nmax, nmax - 1);
      out[i] = int8_t(l);
      const double w = double(x[i]) * x[i];
      sxl += w * x[i] * l;
      sll += w * double(l) * l;
    }
  };
  int8_t trial[256];
  double best_score = -1, best_scale = 0;
  for (int k = -10; k <= 10; ++k) {
    double sxl, sll;
    round_and_score(-(float(nmax) + 0.1f * float(k)) / peak, trial, sxl, sll);
    if (sll > 0 && sxl * sxl / sll > best_score) {
      best_score = sxl * sxl / sll;
      best_scale = sxl / sll;
      std::copy(trial, trial + n, levels);
    }
  }
  for (int r = 0; r < kRefinements && best_scale != 0; ++r) {
    double sxl, sll;
    round_and_score(float(1.0 / best_scale), trial, sxl, sll);
    if (!(sll > 0 && sxl * sxl / sll > best_score)) break;
    best_score = sxl * sxl / sll;
    best_scale = sxl / sll;
    std::copy(trial, trial + n, levels);
  }
  return float(best_scale);
}

}  // namespace mf::quant

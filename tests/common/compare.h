// Numeric comparison helpers for tests: "max relative error" with a floor so that entries
// near zero are judged against the array's typical magnitude instead of blowing up.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>

namespace mf::test {

struct Mismatch {
  double max_rel = 0;   // max over i of |got-want| / (|want| + floor)
  double max_abs = 0;   // max over i of |got-want|
  int64_t worst = -1;   // index of the max_rel entry
  float got = 0, want = 0;
  std::string str() const {
    std::ostringstream s;
    s << "max_rel=" << max_rel << " max_abs=" << max_abs << " at [" << worst << "] got=" << got
      << " want=" << want;
    return s.str();
  }
};

// floor = floor_frac * rms(want): 1e-2 means an entry 100x smaller than typical is compared
// with absolute error ~ rel_tol * rms/100. NaN anywhere is an infinite error.
inline Mismatch compare(const float* got, const float* want, int64_t n, double floor_frac = 1e-2) {
  double sumsq = 0;
  for (int64_t i = 0; i < n; ++i) sumsq += double(want[i]) * want[i];
  const double floor = floor_frac * std::sqrt(sumsq / double(std::max<int64_t>(n, 1))) + 1e-30;
  Mismatch m;
  for (int64_t i = 0; i < n; ++i) {
    double diff = std::fabs(double(got[i]) - double(want[i]));
    if (std::isnan(got[i]) != std::isnan(want[i])) diff = INFINITY;
    double rel = diff / (std::fabs(double(want[i])) + floor);
    m.max_abs = std::max(m.max_abs, diff);
    if (rel > m.max_rel || m.worst < 0) {
      m.max_rel = rel;
      m.worst = i;
      m.got = got[i];
      m.want = want[i];
    }
  }
  return m;
}

}  // namespace mf::test

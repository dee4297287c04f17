#include "report/axis_ticks.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace mf {

namespace {

// A label with just enough decimals for the step (0.25 steps print "0.25", 0.5 steps "0.5");
// very small or very large values in exponent form so a learning rate reads "2e-05".
std::string tick_label(double v, double step) {
  char buf[48];
  if (std::fabs(v) < step * 1e-6) v = 0;  // -0 and rounding residue print as 0
  const double mag = std::max(std::fabs(v), step);
  if (v != 0 && (mag < 1e-3 || mag >= 1e6)) {
    std::snprintf(buf, sizeof buf, "%.3g", v);
    return buf;
  }
  const int decimals = std::clamp(int(std::ceil(-std::log10(step) - 1e-9)), 0, 8);
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

}  // namespace

AxisTicks linear_ticks(double lo, double hi, int target, bool integers) {
  if (!(hi > lo)) {  // one value (or none): a range around it
    const double pad = lo == 0 ? 1.0 : std::fabs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const double raw = (hi - lo) / double(std::max(target, 1));
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  if (integers) step = std::max(1.0, std::round(step));
  AxisTicks t;
  t.lo = std::floor(lo / step + 1e-9) * step;
  t.hi = std::ceil(hi / step - 1e-9) * step;
  if (integers && lo >= 0) t.lo = std::max(t.lo, 0.0);
  const int n = int(std::lround((t.hi - t.lo) / step));
  for (int i = 0; i <= n; ++i) {
    const double v = t.lo + double(i) * step;  // by index: repeated adding drifts (0.30000000000000004)
    t.values.push_back(v);
    t.labels.push_back(tick_label(v, step));
  }
  return t;
}

AxisTicks log_ticks(double lo, double hi) {
  lo = std::max(lo, 1e-300);
  hi = std::max(hi, lo);
  int d0 = int(std::floor(std::log10(lo) + 1e-9)), d1 = int(std::ceil(std::log10(hi) - 1e-9));
  if (d1 <= d0) d1 = d0 + 1;
  AxisTicks t;
  t.lo = std::pow(10.0, d0);
  t.hi = std::pow(10.0, d1);
  const bool fine = d1 - d0 < 3;
  for (int d = d0; d <= d1; ++d) {
    const double decade = std::pow(10.0, d);
    for (double m : {1.0, 2.0, 5.0}) {
      if (m != 1.0 && !fine) continue;
      const double v = m * decade;
      if (v > t.hi * (1 + 1e-9)) break;
      char buf[32];
      std::snprintf(buf, sizeof buf, "%g", v);
      t.values.push_back(v);
      t.labels.push_back(buf);
    }
  }
  return t;
}

}  // namespace mf

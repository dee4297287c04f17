// Where an axis puts its ticks and what their labels say. Linear axes take "nice" steps
// (1, 2 or 5 times a power of ten) and widen their range to whole steps, so the first and last
// gridlines sit on the frame; log axes tick every decade (with 2 and 5 between when the data
// spans less than three decades).
#pragma once
#include <string>
#include <vector>

namespace mf {

struct AxisTicks {
  double lo = 0, hi = 1;          // the axis range (data coordinates; log axes: the values, not their logs)
  std::vector<double> values;     // tick positions inside [lo, hi]
  std::vector<std::string> labels;
};

// About `target` ticks over [lo, hi]; an empty range (one value) is widened around it.
// `integers` keeps steps whole (training steps).
AxisTicks linear_ticks(double lo, double hi, int target = 5, bool integers = false);

// Decades covering [lo, hi] (both > 0; values at or below 0 must be filtered by the caller).
AxisTicks log_ticks(double lo, double hi);

}  // namespace mf

// A line chart as inline SVG for the static reports: a frame with tick marks, numbered ticks and
// gridlines on both axes, axis titles (a log axis says "log scale" in its title and ticks by
// decade), one polyline per series, a dot on every point of a sparse series (so one validation
// point is still seen), and a legend naming each series with its colour and line style.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace mf {

struct LineSeries {
  std::string label, color;
  std::vector<std::pair<double, double>> points;  // (x, y); non-finite y are skipped
  bool dashed = false;
  bool markers = false;  // dots on every point even when the series is dense
};

struct LineChart {
  std::string title, x_title = "step", y_title;
  bool log_y = false;
  std::vector<LineSeries> series;
};

// Series with at most this many points get dots on every point.
inline constexpr size_t kSparsePoints = 40;

// The chart as <figure><figcaption/><svg/></figure>. A chart with no finite point says "no data".
std::string render_line_chart(const LineChart& chart);

// Distinct colours for runs or series, in order (cycles after ten).
const std::string& series_color(size_t i);

}  // namespace mf

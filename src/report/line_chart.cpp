// Layout: legend rows on top (as many as the labels need), the plot frame below them, y tick
// labels to its left and the rotated y title at the far left, x tick labels and the x title
// under it. Sizes are fixed in px; the page scales the SVG through its viewBox.
#include "report/line_chart.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "report/axis_ticks.h"
#include "report/html_text.h"

namespace mf {

namespace {

constexpr double kWidth = 720, kPlotHeight = 220, kLeft = 72, kRight = 18, kBottom = 42;
constexpr double kLegendRow = 18, kCharWidth = 6.6;  // ~ average glyph width of 11 px sans-serif

struct Bounds {
  double x0 = std::numeric_limits<double>::max(), x1 = -std::numeric_limits<double>::max();
  double y0 = std::numeric_limits<double>::max(), y1 = -std::numeric_limits<double>::max();
  bool empty() const { return x0 > x1; }
};

bool usable(double y, bool log_y) { return std::isfinite(y) && (!log_y || y > 0); }

Bounds data_bounds(const LineChart& c) {
  Bounds b;
  for (const LineSeries& s : c.series)
    for (auto [x, y] : s.points) {
      if (!usable(y, c.log_y) || !std::isfinite(x)) continue;
      b.x0 = std::min(b.x0, x), b.x1 = std::max(b.x1, x), b.y0 = std::min(b.y0, y), b.y1 = std::max(b.y1, y);
    }
  return b;
}

// Legend items laid out left to right, wrapping to new rows; returns each item's (x, row).
std::vector<std::pair<double, int>> legend_layout(const LineChart& c, int* rows) {
  std::vector<std::pair<double, int>> at;
  double x = kLeft;
  int row = 0;
  for (const LineSeries& s : c.series) {
    const double w = 30 + kCharWidth * double(s.label.size()) + 14;
    if (x + w > kWidth - kRight && x > kLeft) x = kLeft, ++row;
    at.emplace_back(x, row);
    x += w;
  }
  *rows = c.series.empty() ? 0 : row + 1;
  return at;
}

std::string dash_attr(const LineSeries& s) { return s.dashed ? " stroke-dasharray='6 3'" : ""; }

}  // namespace

const std::string& series_color(size_t i) {
  static const std::string kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                        "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"};
  return kColors[i % 10];
}

std::string render_line_chart(const LineChart& c) {
  int legend_rows = 0;
  const auto legend_at = legend_layout(c, &legend_rows);
  const double top = 10 + kLegendRow * legend_rows + 6;
  const double height = top + kPlotHeight + kBottom;
  const double plot_w = kWidth - kLeft - kRight;
  std::ostringstream o;
  o << "<figure class='chart'><figcaption>" << html_escape(c.title) << "</figcaption><svg viewBox='0 0 " << kWidth
    << " " << height << "' width='" << kWidth << "' height='" << height << "' data-scale='"
    << (c.log_y ? "log" : "linear") << "' role='img' aria-label='" << html_escape(c.title) << "'>";
  const Bounds b = data_bounds(c);
  if (b.empty()) {
    o << "<text x='" << kWidth / 2 << "' y='" << top + kPlotHeight / 2
      << "' text-anchor='middle' font-size='13' fill='#666'>no data</text></svg></figure>";
    return o.str();
  }
  const AxisTicks xt = linear_ticks(b.x0, b.x1, 8, true);
  const AxisTicks yt = c.log_y ? log_ticks(b.y0, b.y1) : linear_ticks(b.y0, b.y1, 5);
  auto fy = [&](double y) { return c.log_y ? std::log10(y) : y; };
  auto px = [&](double x) { return kLeft + (x - xt.lo) / (xt.hi - xt.lo) * plot_w; };
  auto py = [&](double y) { return top + kPlotHeight - (fy(y) - fy(yt.lo)) / (fy(yt.hi) - fy(yt.lo)) * kPlotHeight; };

  // Gridlines and ticks first, so the data draws over them.
  o << "<g class='grid' stroke='#e3e3e3' stroke-width='1'>";
  for (double v : xt.values) o << "<line x1='" << px(v) << "' x2='" << px(v) << "' y1='" << top << "' y2='" << top + kPlotHeight << "'/>";
  for (double v : yt.values) o << "<line x1='" << kLeft << "' x2='" << kLeft + plot_w << "' y1='" << py(v) << "' y2='" << py(v) << "'/>";
  o << "</g><rect x='" << kLeft << "' y='" << top << "' width='" << plot_w << "' height='" << kPlotHeight
    << "' fill='none' stroke='#888'/><g font-size='11' fill='#333'>";
  for (size_t i = 0; i < xt.values.size(); ++i) {
    const double x = px(xt.values[i]);
    o << "<line x1='" << x << "' x2='" << x << "' y1='" << top + kPlotHeight << "' y2='" << top + kPlotHeight + 4
      << "' stroke='#888'/><text class='tick x' x='" << x << "' y='" << top + kPlotHeight + 16
      << "' text-anchor='middle'>" << html_escape(xt.labels[i]) << "</text>";
  }
  for (size_t i = 0; i < yt.values.size(); ++i) {
    const double y = py(yt.values[i]);
    o << "<line x1='" << kLeft - 4 << "' x2='" << kLeft << "' y1='" << y << "' y2='" << y
      << "' stroke='#888'/><text class='tick y' x='" << kLeft - 7 << "' y='" << y + 4 << "' text-anchor='end'>"
      << html_escape(yt.labels[i]) << "</text>";
  }
  const std::string y_title = c.y_title + (c.log_y ? " (log scale)" : "");
  o << "</g><text class='axis-title x' x='" << kLeft + plot_w / 2 << "' y='" << height - 6
    << "' text-anchor='middle' font-size='12'>" << html_escape(c.x_title) << "</text><text class='axis-title y' x='14' y='"
    << top + kPlotHeight / 2 << "' transform='rotate(-90 14 " << top + kPlotHeight / 2
    << ")' text-anchor='middle' font-size='12'>" << html_escape(y_title) << "</text>";

  // Series (the widened tick range holds every point, so nothing needs clipping).
  for (const LineSeries& s : c.series) {
    std::vector<std::pair<double, double>> pts;
    for (auto [x, y] : s.points)
      if (usable(y, c.log_y) && std::isfinite(x)) pts.emplace_back(px(x), py(y));
    o << "<g class='series' data-label='" << html_escape(s.label) << "' data-points='" << pts.size() << "'>";
    if (pts.size() >= 2) {
      o << "<polyline fill='none' stroke='" << s.color << "' stroke-width='1.6'" << dash_attr(s) << " points='";
      for (auto [x, y] : pts) o << x << "," << y << " ";
      o << "'/>";
    }
    if (s.markers || pts.size() <= kSparsePoints)
      for (auto [x, y] : pts)
        o << "<circle class='marker' cx='" << x << "' cy='" << y << "' r='3' fill='" << s.color
          << "' stroke='#fff' stroke-width='0.8'/>";
    o << "</g>";
  }

  // Legend: a line sample in the series' colour and style (with a dot where the series has them).
  o << "<g class='legend' font-size='11'>";
  for (size_t i = 0; i < c.series.size(); ++i) {
    const LineSeries& s = c.series[i];
    const double x = legend_at[i].first, y = 10 + kLegendRow * legend_at[i].second + 9;
    o << "<g class='legend-item'><line x1='" << x << "' x2='" << x + 24 << "' y1='" << y << "' y2='" << y
      << "' stroke='" << s.color << "' stroke-width='2'" << dash_attr(s) << "/>";
    if (s.markers || s.points.size() <= kSparsePoints)
      o << "<circle cx='" << x + 12 << "' cy='" << y << "' r='3' fill='" << s.color << "'/>";
    o << "<text x='" << x + 30 << "' y='" << y + 4 << "'>" << html_escape(s.label) << "</text></g>";
  }
  o << "</g></svg></figure>";
  return o.str();
}

}  // namespace mf

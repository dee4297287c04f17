#include "report/heatmap.h"

#include <algorithm>
#include <sstream>

#include "report/axis_ticks.h"
#include "report/html_text.h"

namespace mf {

std::string render_heatmap(const Heatmap& h) {
  const size_t rows = h.row_labels.size(), n = std::min(h.x.size(), h.values.size());
  const size_t cols = std::min(n, std::max<size_t>(h.max_columns, 1));
  const double W = 720, L = 72, R = 18, T = 6, cell_h = 16;
  const double plot_w = W - L - R, plot_h = cell_h * double(rows), H = T + plot_h + 38;
  std::ostringstream o;
  o << "<figure class='heatmap'><figcaption>" << html_escape(h.title) << "</figcaption>";
  if (cols == 0 || rows == 0) return o.str() + "<p>no data</p></figure>";
  o << "<svg viewBox='0 0 " << W << " " << H << "' width='" << W << "' height='" << H << "' role='img' aria-label='"
    << html_escape(h.title) << "'>";
  const double cell_w = plot_w / double(cols);
  for (size_t c = 0; c < cols; ++c) {
    const size_t lo = c * n / cols, hi = std::max(lo + 1, (c + 1) * n / cols);
    for (size_t r = 0; r < rows; ++r) {
      double v = 0;
      for (size_t i = lo; i < hi; ++i) v += r < h.values[i].size() ? h.values[i][r] : 0.0;
      v /= double(hi - lo);
      const std::string shown = h.percent ? format_percent(v) : format_g(v);
      o << "<rect class='cell' x='" << L + double(c) * cell_w << "' y='" << T + double(r) * cell_h << "' width='"
        << cell_w + 0.4 << "' height='" << cell_h << "' fill='" << h.scale.color(v) << "'><title>" << h.x_title << " "
        << format_g(h.x[lo], 8) << (hi - lo > 1 ? "-" + format_g(h.x[hi - 1], 8) : "") << ", "
        << html_escape(h.row_labels[r]) << ": " << shown << "</title></rect>";
    }
  }
  o << "<rect x='" << L << "' y='" << T << "' width='" << plot_w << "' height='" << plot_h
    << "' fill='none' stroke='#888'/><g font-size='11' fill='#333'>";
  for (size_t r = 0; r < rows; ++r)
    o << "<text class='row-label' x='" << L - 6 << "' y='" << T + double(r) * cell_h + cell_h - 4
      << "' text-anchor='end'>" << html_escape(h.row_labels[r]) << "</text>";
  // x ticks at column centres: the axis maps the first to the last logged x value.
  const double x0 = h.x.front(), x1 = h.x[n - 1];
  const AxisTicks xt = linear_ticks(x0, x1, 8, true);
  for (size_t i = 0; i < xt.values.size(); ++i) {
    if (xt.values[i] < x0 || xt.values[i] > x1) continue;
    const double f = x1 > x0 ? (xt.values[i] - x0) / (x1 - x0) : 0.5;
    const double x = L + cell_w / 2 + f * (plot_w - cell_w);
    o << "<line x1='" << x << "' x2='" << x << "' y1='" << T + plot_h << "' y2='" << T + plot_h + 4
      << "' stroke='#888'/><text class='tick x' x='" << x << "' y='" << T + plot_h + 16 << "' text-anchor='middle'>"
      << html_escape(xt.labels[i]) << "</text>";
  }
  o << "</g><text class='axis-title x' x='" << L + plot_w / 2 << "' y='" << H - 4
    << "' text-anchor='middle' font-size='12'>" << html_escape(h.x_title) << "</text></svg>";
  o << render_color_bar(h.scale, h.scale_ticks, h.scale_caption, h.id + "-scale") << "</figure>";
  return o.str();
}

}  // namespace mf

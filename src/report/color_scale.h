// The colours of a heatmap and the bar that says what they mean. A sequential scale runs
// white -> one hue (more is darker); a diverging one runs blue -> white -> red around a middle
// value (for expert load: white is the uniform share 1/E). The bar is a standalone inline SVG
// with numbered ticks, so a page's reader can read a cell's value off its colour.
#pragma once
#include <string>
#include <vector>

namespace mf {

struct ColorScale {
  enum class Kind { Sequential, Diverging };
  Kind kind = Kind::Sequential;
  double lo = 0, mid = 0.5, hi = 1;  // values at the ends (and the white middle of a diverging scale)

  // "rgb(r,g,b)" for v, clamped to [lo, hi].
  std::string color(double v) const;
  // Whether text drawn on color(v) should be white for contrast.
  bool dark(double v) const;
};

struct ColorTick {
  double value;
  std::string label;
};

// A horizontal bar `width` px wide: the gradient, a tick and its label under each ColorTick, and
// `caption` above. `gradient_id` must be unique in the page (an SVG id).
std::string render_color_bar(const ColorScale& scale, const std::vector<ColorTick>& ticks, const std::string& caption,
                             const std::string& gradient_id, double width = 320);

}  // namespace mf

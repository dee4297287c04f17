#include "report/color_scale.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "report/html_text.h"

namespace mf {

namespace {

struct Rgb {
  double r, g, b;
};

Rgb mix(Rgb a, Rgb b, double t) { return {a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t}; }

constexpr Rgb kWhite{255, 255, 255}, kBlue{33, 102, 172}, kRed{178, 24, 43}, kNavy{8, 48, 107};

Rgb rgb_at(const ColorScale& s, double v) {
  v = std::clamp(v, std::min(s.lo, s.hi), std::max(s.lo, s.hi));
  if (s.kind == ColorScale::Kind::Sequential) {
    const double t = s.hi == s.lo ? 0.0 : (v - s.lo) / (s.hi - s.lo);
    return mix(kWhite, kNavy, std::clamp(t, 0.0, 1.0));
  }
  if (v < s.mid) return mix(kWhite, kBlue, s.mid == s.lo ? 0.0 : (s.mid - v) / (s.mid - s.lo));
  return mix(kWhite, kRed, s.hi == s.mid ? 0.0 : (v - s.mid) / (s.hi - s.mid));
}

std::string css(Rgb c) {
  std::ostringstream o;
  o << "rgb(" << int(std::lround(c.r)) << "," << int(std::lround(c.g)) << "," << int(std::lround(c.b)) << ")";
  return o.str();
}

}  // namespace

std::string ColorScale::color(double v) const { return css(rgb_at(*this, v)); }

bool ColorScale::dark(double v) const {
  const Rgb c = rgb_at(*this, v);
  return 0.299 * c.r + 0.587 * c.g + 0.114 * c.b < 140;
}

std::string render_color_bar(const ColorScale& scale, const std::vector<ColorTick>& ticks, const std::string& caption,
                             const std::string& gradient_id, double width) {
  const double pad = 24, bar_y = 20, bar_h = 12, height = bar_y + bar_h + 22;
  const double bar_w = width - 2 * pad;
  // The caption may be longer than the bar: the drawing widens to hold it (~6.8 px a character at 12 px).
  const double svg_w = std::max(width, pad + 6.8 * double(caption.size()) + 8);
  std::ostringstream o;
  o << "<svg class='color-scale' viewBox='0 0 " << svg_w << " " << height << "' width='" << svg_w << "' height='"
    << height << "' role='img' aria-label='" << html_escape(caption) << "'><defs><linearGradient id='"
    << html_escape(gradient_id) << "'>";
  for (int i = 0; i <= 10; ++i) {
    const double t = i / 10.0;
    o << "<stop offset='" << t << "' stop-color='" << scale.color(scale.lo + t * (scale.hi - scale.lo)) << "'/>";
  }
  o << "</linearGradient></defs><text x='" << pad << "' y='13' font-size='12'>" << html_escape(caption)
    << "</text><rect x='" << pad << "' y='" << bar_y << "' width='" << bar_w << "' height='" << bar_h
    << "' fill='url(#" << html_escape(gradient_id) << ")' stroke='#888' stroke-width='0.5'/>";
  for (const ColorTick& t : ticks) {
    const double f = scale.hi == scale.lo ? 0.0 : (t.value - scale.lo) / (scale.hi - scale.lo);
    const double x = pad + std::clamp(f, 0.0, 1.0) * bar_w;
    o << "<line x1='" << x << "' x2='" << x << "' y1='" << bar_y + bar_h << "' y2='" << bar_y + bar_h + 4
      << "' stroke='#444'/><text class='scale-tick' x='" << x << "' y='" << bar_y + bar_h + 16
      << "' text-anchor='middle' font-size='11'>" << html_escape(t.label) << "</text>";
  }
  o << "</svg>";
  return o.str();
}

}  // namespace mf

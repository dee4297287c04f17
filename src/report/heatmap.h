// A matrix of values over time as an inline SVG heatmap: one row per labelled item (an expert),
// one column per x value (a logged step, averaged into at most `max_columns` buckets), coloured by
// a ColorScale whose bar with numbered ticks sits under the x axis. Each cell has a tooltip with
// its x value, row and value.
#pragma once
#include <string>
#include <vector>

#include "report/color_scale.h"

namespace mf {

struct Heatmap {
  std::string title, x_title = "step";
  std::vector<std::string> row_labels;
  std::vector<double> x;                    // [columns]
  std::vector<std::vector<double>> values;  // [columns][rows]
  ColorScale scale;
  std::vector<ColorTick> scale_ticks;
  std::string scale_caption;
  std::string id;                           // unique in the page (names the colour bar's gradient)
  size_t max_columns = 200;
  bool percent = true;                      // tooltips print values as percentages
};

std::string render_heatmap(const Heatmap& h);

}  // namespace mf

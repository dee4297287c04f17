// The token grid of `moeforge inspect --tokens`: one row per prompt token, one column per MoE
// layer, each cell naming the token's top-1 expert. Names that do not fit a column are shown by
// short labels that stay distinct (report/short_labels), explained in a legend under the grid.
#pragma once
#include <string>
#include <vector>

#include "infer/router_analysis.h"

namespace mf {

// `token_texts[t]` is token t as decoded text. Columns are as wide as the widest label
// (at most `max_label` characters).
std::string format_token_route_grid(const PromptRoutes& routes, const std::vector<std::string>& token_texts,
                                    size_t max_label = 10);

// A token's text for one table cell: a space as a middle dot, newline and tab as \n and \t, other
// control characters as \xNN, cut to `width` characters.
std::string token_cell_text(const std::string& text, size_t width);

}  // namespace mf

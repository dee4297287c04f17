#include "infer/token_route_grid.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "report/short_labels.h"

namespace mf {

std::string token_cell_text(const std::string& text, size_t width) {
  std::string out;
  for (char c : text) {
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else if (c == ' ') out += "\xC2\xB7";  // a middle dot: " the" and "the" differ, and a space token shows
    else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return utf8_prefix(out, width);
}

std::string format_token_route_grid(const PromptRoutes& routes, const std::vector<std::string>& token_texts,
                                    size_t max_label) {
  const std::vector<std::string> labels = short_unique_labels(routes.expert_names, max_label);
  size_t width = 3;
  for (const std::string& l : labels) width = std::max(width, utf8_length(l));
  for (const LayerRoutes& l : routes.layers) width = std::max(width, std::to_string(l.layer).size() + 1);
  constexpr size_t kTokenWidth = 16;
  std::ostringstream o;
  // Cells are padded to the column width; a row's trailing spaces are trimmed.
  auto end_row = [&](std::string row) {
    row.erase(row.find_last_not_of(' ') + 1);
    o << row << "\n";
  };
  o << "top-1 expert per token (columns: MoE layers; \xC2\xB7 is a space)\n";
  std::string row = pad_right("token", kTokenWidth);
  for (const LayerRoutes& l : routes.layers) {
    std::string header = "L";
    header += std::to_string(l.layer);
    row += "  " + pad_right(header, width);
  }
  end_row(row);
  for (size_t t = 0; t < token_texts.size(); ++t) {
    row = pad_right(token_cell_text(token_texts[t], kTokenWidth), kTokenWidth);
    for (const LayerRoutes& l : routes.layers) {
      const bool routed = t < l.tokens.size() && !l.tokens[t].experts.empty();
      row += "  " + pad_right(routed ? labels[size_t(l.tokens[t].experts[0])] : "-", width);
    }
    end_row(row);
  }
  if (labels != routes.expert_names) {
    o << "experts:";
    for (size_t e = 0; e < labels.size(); ++e) o << (e ? ", " : " ") << labels[e] << " = " << routes.expert_names[e];
    o << "\n";
  }
  return o.str();
}

}  // namespace mf

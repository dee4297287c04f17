// Text for the static HTML/SVG reports (moeforge plot, inspect -o): escaping and the short
// number formats their labels use.
#pragma once
#include <string>

namespace mf {

// Escapes the characters that would end text or an attribute value (<, >, &, ', ").
std::string html_escape(const std::string& s);

// printf's %.{digits}g: "0.001", "3.142", "1e-05".
std::string format_g(double v, int digits = 4);

// A share as a percentage with one decimal: 0.256 -> "25.6%".
std::string format_percent(double share);

}  // namespace mf

// Short labels that stay distinct, for columns and axes too narrow for full names (expert names
// in `inspect --tokens`, heatmap rows). Cutting every name to its first letters made
// expert0..expert3 all read "expe"; these labels are unique by construction, and a caller shows a
// legend whenever a label differs from its name.
#pragma once
#include <string>
#include <vector>

namespace mf {

// One label per name, each at most `max_chars` characters (UTF-8 code points), all distinct:
//  1. the names themselves when they are distinct and fit;
//  2. else the names without their common prefix of 3 or more characters ("expert_math", "expert_code" -> "math",
//     "code"), cut to max_chars, when that leaves them distinct and non-empty;
//  3. else the names cut to max_chars, when distinct;
//  4. else "e0", "e1", ... (the index).
std::vector<std::string> short_unique_labels(const std::vector<std::string>& names, size_t max_chars);

// Code points in a UTF-8 string (continuation bytes not counted): its width in a terminal for
// the alphabets expert names use.
size_t utf8_length(const std::string& s);

// The first `n` code points of s (never splits a multi-byte character).
std::string utf8_prefix(const std::string& s, size_t n);

// s padded with spaces to `width` code points (longer strings unchanged).
std::string pad_right(const std::string& s, size_t width);

}  // namespace mf

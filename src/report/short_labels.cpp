#include "report/short_labels.h"

#include <algorithm>
#include <set>

namespace mf {

namespace {

bool continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

bool distinct_and_nonempty(const std::vector<std::string>& v) {
  std::set<std::string> seen;
  for (const std::string& s : v)
    if (s.empty() || !seen.insert(s).second) return false;
  return true;
}

// Bytes shared at the start of every name, backed off to a code point boundary.
size_t common_prefix_bytes(const std::vector<std::string>& names) {
  if (names.size() < 2) return 0;
  size_t n = names[0].size();
  for (const std::string& s : names) {
    size_t i = 0;
    while (i < n && i < s.size() && s[i] == names[0][i]) ++i;
    n = i;
  }
  while (n > 0 && n < names[0].size() && continuation(names[0][n])) --n;
  return n;
}

}  // namespace

size_t utf8_length(const std::string& s) {
  return size_t(std::count_if(s.begin(), s.end(), [](char c) { return !continuation(c); }));
}

std::string utf8_prefix(const std::string& s, size_t n) {
  size_t points = 0, i = 0;
  for (; i < s.size(); ++i) {
    if (!continuation(s[i])) {
      if (points == n) break;
      ++points;
    }
  }
  return s.substr(0, i);
}

std::string pad_right(const std::string& s, size_t width) {
  const size_t len = utf8_length(s);
  return len >= width ? s : s + std::string(width - len, ' ');
}

std::vector<std::string> short_unique_labels(const std::vector<std::string>& names, size_t max_chars) {
  max_chars = std::max<size_t>(max_chars, 1);
  const bool fit = std::all_of(names.begin(), names.end(), [&](const std::string& s) { return utf8_length(s) <= max_chars; });
  if (fit && distinct_and_nonempty(names)) return names;
  auto cut = [&](size_t skip) {
    std::vector<std::string> out;
    for (const std::string& s : names) out.push_back(utf8_prefix(s.substr(std::min(skip, s.size())), max_chars));
    return out;
  };
  // A short shared prefix ("Co" of Coder, Cook) is better kept: cutting reads "Code", "Cook".
  if (const size_t prefix = common_prefix_bytes(names); utf8_length(names[0].substr(0, prefix)) >= 3) {
    std::vector<std::string> stripped = cut(prefix);
    if (distinct_and_nonempty(stripped)) return stripped;
  }
  if (std::vector<std::string> cut_names = cut(0); distinct_and_nonempty(cut_names)) return cut_names;
  std::vector<std::string> index;
  for (size_t i = 0; i < names.size(); ++i) index.push_back("e" + std::to_string(i));
  return index;
}

}  // namespace mf

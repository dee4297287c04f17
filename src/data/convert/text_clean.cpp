#include "data/convert/text_clean.h"

#include <regex>

namespace mf {

std::string trim(std::string_view s) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return std::string(s.substr(b, e - b));
}

std::string strip_citation_marks(std::string_view s) {
  // Reference numbers, footnote letters/labels, and "... needed"-style maintenance tags. A lone
  // capital letter ("[I]") is left alone: in quotations it is an editorial insertion.
  static const std::regex mark(
      R"(\[(?:\d+|[a-z]|(?:[Nn]ote|[Nn]b|n\.|p|Jp) ?[0-9a-z]+|[a-z -]*needed|when\?|who\?|which\?|why\?|dubious[^\]]*|dead link|failed verification)\])");
  std::string out;
  out.reserve(s.size());
  const std::string text(s);
  size_t copied = 0;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), mark); it != std::sregex_iterator(); ++it) {
    const size_t start = size_t(it->position()), end = start + size_t(it->length());
    out.append(text, copied, start - copied);
    copied = end;
    // "word [3]." would leave "word ." behind: drop the space when punctuation or the end follows.
    const char after = end < text.size() ? text[end] : '\n';
    const bool closes = after == '.' || after == ',' || after == ';' || after == ':' || after == '!' ||
                        after == '?' || after == ')' || after == ' ' || after == '\n';
    while (closes && !out.empty() && out.back() == ' ') out.pop_back();
  }
  out.append(text, copied, std::string::npos);
  return out;
}

}  // namespace mf

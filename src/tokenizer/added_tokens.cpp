#include "tokenizer/added_tokens.h"

#include <algorithm>

#include "tokenizer/unicode.h"

namespace mf {
namespace {

bool is_word_char(char32_t cp) {
  return unicode::is_letter(cp) || unicode::is_number(cp) || cp == '_';
}

size_t char_start_before(std::string_view text, size_t pos) {
  size_t s = pos - 1;
  while (s > 0 && pos - s < 4 && (static_cast<uint8_t>(text[s]) & 0xC0) == 0x80) --s;
  const auto u = unicode::decode_utf8(text, s);
  return s + u.length == pos ? s : pos - 1;
}

bool stands_alone(std::string_view text, size_t b, size_t e) {
  if (b > 0) {
    const auto u = unicode::decode_utf8(text, char_start_before(text, b));
    if (u.valid && is_word_char(u.cp)) return false;
  }
  if (e < text.size()) {
    const auto u = unicode::decode_utf8(text, e);
    if (u.valid && is_word_char(u.cp)) return false;
  }
  return true;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  // Longest first, so the first candidate that matches at a position is the longest.
  std::stable_sort(tokens_.begin(), tokens_.end(),
                   [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
  for (size_t i = 0; i < tokens_.size(); ++i)
    if (!tokens_[i].content.empty()) by_first_byte_[static_cast<uint8_t>(tokens_[i].content[0])].push_back(i);
}

AddedTokenMatcher::Match AddedTokenMatcher::find(std::string_view text, size_t pos, size_t floor,
                                                 bool parse_special) const {
  if (tokens_.empty()) return {};
  for (size_t i = pos; i < text.size(); ++i) {
    for (size_t idx : by_first_byte_[static_cast<uint8_t>(text[i])]) {
      const AddedToken& t = tokens_[idx];
      if (t.special && !parse_special) continue;
      if (text.compare(i, t.content.size(), t.content) != 0) continue;
      size_t b = i, e = i + t.content.size();
      if (t.single_word && !stands_alone(text, b, e)) continue;
      if (t.lstrip)
        while (b > floor) {
          const size_t start = char_start_before(text, b);
          const auto u = unicode::decode_utf8(text, start);
          if (!u.valid || !unicode::is_whitespace(u.cp)) break;
          b = start;
        }
      if (t.rstrip)
        while (e < text.size()) {
          const auto u = unicode::decode_utf8(text, e);
          if (!u.valid || !unicode::is_whitespace(u.cp)) break;
          e += u.length;
        }
      return {&t, b, e};
    }
  }
  return {};
}

}  // namespace mf

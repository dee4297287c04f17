// One pass over the space-separated tokens: each token decides whether it glues to its left
// neighbour, its right one or both, by hand-written rules (punctuation, contractions, possessives,
// alternating quote marks), with small word lists to settle the ambiguous straight apostrophe.
#include "data/convert/detokenize.h"

#include <array>
#include <vector>

namespace mf {
namespace {

constexpr std::string_view kRightSingleQuote = "\xE2\x80\x99";  // ’, DailyDialog's usual apostrophe

std::vector<std::string_view> split_on_space(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
    const size_t start = i;
    while (i < s.size() && !(s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
    if (i > start) out.push_back(s.substr(start, i - start));
  }
  return out;
}

bool is_apostrophe(std::string_view t) { return t == "'" || t == kRightSingleQuote; }

// The text after a leading apostrophe ("'s" -> "s"), or "" when there is none.
std::string_view after_apostrophe(std::string_view t) {
  if (t.size() > 1 && t[0] == '\'') return t.substr(1);
  if (t.size() > kRightSingleQuote.size() && t.substr(0, kRightSingleQuote.size()) == kRightSingleQuote)
    return t.substr(kRightSingleQuote.size());
  return {};
}

std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return out;
}

bool is_contraction_suffix(std::string_view s) {
  static constexpr std::array<std::string_view, 7> kSuffixes{"s", "t", "re", "ve", "ll", "d", "m"};
  const std::string l = lower_ascii(s);
  for (std::string_view k : kSuffixes)
    if (l == k) return true;
  return false;
}

bool is_ascii_upper(char c) { return c >= 'A' && c <= 'Z'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
// A token starts a word with a letter, a digit or a non-ASCII character (accented letters, CJK)
// other than one of the General Punctuation block (U+2000-U+206F: curly quotes, dashes, ellipsis).
bool starts_word(std::string_view t) {
  if (t.empty()) return false;
  const auto b0 = static_cast<unsigned char>(t[0]);
  if (b0 < 0x80) return is_digit(t[0]) || (t[0] >= 'a' && t[0] <= 'z') || is_ascii_upper(t[0]);
  const bool general_punctuation =
      b0 == 0xE2 && t.size() > 1 && (static_cast<unsigned char>(t[1]) == 0x80 || static_cast<unsigned char>(t[1]) == 0x81);
  return !general_punctuation;
}
// The previous token ends a word; "'Souza" (glued to "D") counts, so "D 'Souza 's" -> "D'Souza's".
bool word_before(std::string_view prev) { return starts_word(prev) || starts_word(after_apostrophe(prev)); }
bool starts_digit(std::string_view t) { return !t.empty() && is_digit(t.front()); }
bool ends_digit(std::string_view t) { return !t.empty() && is_digit(t.back()); }
// A word that can take a plural possessive apostrophe ("players '"): ends in s and is not one of
// the common function words that end in s ("described as ' yammer '" opens a quotation).
bool plural_possessor(std::string_view t) {
  if (t.empty() || (t.back() != 's' && t.back() != 'S')) return false;
  static constexpr std::array<std::string_view, 20> kNot{"as", "was", "is", "has", "his", "this", "its",
                                                         "us", "yes", "does", "hers", "ours", "yours",
                                                         "theirs", "whereas", "thus", "plus", "always",
                                                         "perhaps", "towards"};
  const std::string l = lower_ascii(t);
  for (std::string_view w : kNot)
    if (l == w) return false;
  return true;
}

// "DON ’ T" keeps its capital T; "I ’ Ve" (a DailyDialog oddity) becomes "I’ve".
bool shouting(std::string_view word) {
  if (word.size() < 2) return false;
  for (char c : word)
    if (c >= 'a' && c <= 'z') return false;
  return true;
}
std::string suffix_case(std::string_view before, std::string_view suffix) {
  return shouting(before) ? std::string(suffix) : lower_ascii(suffix);
}

bool in(std::string_view t, std::initializer_list<std::string_view> set) {
  for (std::string_view s : set)
    if (t == s) return true;
  return false;
}
bool attaches_left(std::string_view t) {
  return in(t, {",", ".", ";", "!", "?", "%", ")", "]", "}", "...", "..", "\xE2\x80\xA6" /* … */,
                "\xE2\x80\x9D" /* ” */, "n't", "n\xE2\x80\x99t"});
}
bool attaches_right(std::string_view t) {
  return in(t, {"(", "[", "{", "\xE2\x80\x9C" /* “ */, "\xE2\x80\x98" /* ‘ */});
}
bool is_currency(std::string_view t) {
  return in(t, {"$", "\xC2\xA3" /* £ */, "\xE2\x82\xAC" /* € */, "\xC2\xA5" /* ¥ */, "\xE2\x82\xB9" /* ₹ */});
}

}  // namespace

std::string detokenize(std::string_view spaced) {
  const std::vector<std::string_view> tok = split_on_space(spaced);
  std::string out;
  out.reserve(spaced.size());
  bool glue_next = false;         // the previous token joins the next one without a space
  bool lower_next = false;        // the next token is a contraction suffix after a lone apostrophe
  bool double_open = false, single_open = false;
  for (size_t i = 0; i < tok.size(); ++i) {
    const std::string_view t = tok[i];
    const std::string_view prev = i ? tok[i - 1] : std::string_view();
    const std::string_view next = i + 1 < tok.size() ? tok[i + 1] : std::string_view();
    const std::string_view suffix = after_apostrophe(t);
    std::string text(t);
    bool left = false, right = false;
    if (lower_next) {
      text = suffix_case(i >= 2 ? tok[i - 2] : std::string_view(), t);
      lower_next = false;
    } else if (t == "\"") {
      (double_open ? left : right) = true;
      double_open = !double_open;
    } else if (is_apostrophe(t)) {
      if (word_before(prev) && is_contraction_suffix(next)) {  // "it ' s"
        left = right = lower_next = true;
      } else if ((prev == "o" && next == "clock") || (prev == "ma" && next == "am")) {  // "o ’ clock", "ma ’ am"
        left = right = true;
      } else if (!single_open && plural_possessor(prev) && !next.empty() && !attaches_left(next)) {  // "players ' rights"
        left = true;
      } else {  // a single quotation mark
        (single_open ? left : right) = true;
        single_open = !single_open;
      }
    } else if (!suffix.empty() && is_contraction_suffix(suffix) && word_before(prev)) {  // "it 's"
      left = true;
      text = std::string(t.substr(0, t.size() - suffix.size())) + suffix_case(prev, suffix);
    } else if (starts_word(suffix) && word_before(prev)) {  // in-word apostrophes: "O 'Brien", "o ’clock", "Xi 'an"
      left = true;
    } else if (t == ":") {
      left = true;
      right = ends_digit(prev) && starts_digit(next);  // "17 : 30"
    } else if (attaches_left(t)) {
      left = true;
    } else if (attaches_right(t)) {
      right = true;
    } else if (is_currency(t) && starts_digit(next)) {
      right = true;
    }
    if (!out.empty() && !left && !glue_next) out.push_back(' ');
    out += text;
    glue_next = right;
  }
  return out;
}

}  // namespace mf

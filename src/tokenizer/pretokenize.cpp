// The split regexes, each hand-compiled into a matcher that tries its alternatives in order at the
// current code point, as Oniguruma's leftmost-first search does: the fast path for the three
// known strings. Any other regex goes to PCRE2 (regex_split.cpp).
#include "tokenizer/pretokenize.h"

#include "core/error.h"
#include "tokenizer/regex_split.h"
#include "tokenizer/unicode.h"

namespace mf {
namespace {

using unicode::CharClass;

// A decoded code point with its class. Ill-formed bytes become class Other; their cp is the
// byte value (>= 0x80), so it never equals the ASCII characters the patterns test for.
struct Unit {
  char32_t cp;
  CharClass cls;
  uint32_t offset;
};

std::vector<Unit> decode_units(std::string_view text) {
  std::vector<Unit> units;
  units.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const auto u = unicode::decode_utf8(text, pos);
    units.push_back({u.cp, u.valid ? unicode::char_class(u.cp) : CharClass::Other,
                     static_cast<uint32_t>(pos)});
    pos += u.length;
  }
  return units;
}

class Matcher {
 public:
  Matcher(const std::vector<Unit>& u, SplitPattern p) : u_(u), n_(u.size()), p_(p) {}

  // Length in units of the match at i (always >= 1: the patterns cover every character).
  size_t match(size_t i) const { return p_ == SplitPattern::Gpt2 ? match_gpt2(i) : match_llama3(i); }

 private:
  bool has(size_t k, CharClass c) const { return k < n_ && u_[k].cls == c; }
  bool is(size_t k, char32_t c) const { return k < n_ && u_[k].cp == c; }
  size_t run_end(size_t k, CharClass c) const {
    while (k < n_ && u_[k].cls == c) ++k;
    return k;
  }

  // 's|'t|'re|'ve|'m|'ll|'d, optionally case-insensitive as Oniguruma's (?i:...) is:
  // 's' also matches U+017F LATIN SMALL LETTER LONG S, whose case fold is 's'.
  size_t contraction(size_t i, bool fold) const {
    if (!is(i, '\'') || i + 1 >= n_) return 0;
    auto at = [&](size_t k) -> char32_t {
      if (k >= n_) return 0;
      char32_t c = u_[k].cp;
      if (!fold) return c;
      if (c >= 'A' && c <= 'Z') return c + ('a' - 'A');
      if (c == 0x17F) return 's';
      return c;
    };
    const char32_t a = at(i + 1), b = at(i + 2);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
  }

  // \s+(?!\S)|\s+ at a whitespace character: the run, less its last character when a
  // non-space follows and the run is longer than one.
  size_t whitespace_tail(size_t i) const {
    const size_t e = run_end(i, CharClass::Whitespace);
    if (e == n_ || e - i == 1) return e - i;
    return e - i - 1;
  }

  size_t match_gpt2(size_t i) const {
    if (size_t len = contraction(i, false)) return len;
    const size_t j = is(i, ' ') ? i + 1 : i;   // the optional leading ' '
    for (CharClass c : {CharClass::Letter, CharClass::Number, CharClass::Other})
      if (has(j, c)) return run_end(j, c) - i;
    return whitespace_tail(i);
  }

  size_t match_llama3(size_t i) const {
    if (size_t len = contraction(i, true)) return len;
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (has(i, CharClass::Letter)) return run_end(i, CharClass::Letter) - i;
    if (!has(i, CharClass::Number) && !is(i, '\r') && !is(i, '\n') && has(i + 1, CharClass::Letter))
      return run_end(i + 1, CharClass::Letter) - i;
    // \p{N}{1,3} (Llama3) or \p{N} (Qwen2)
    if (has(i, CharClass::Number)) {
      const size_t max_len = p_ == SplitPattern::Llama3 ? 3 : 1;
      size_t k = i;
      while (k - i < max_len && has(k, CharClass::Number)) ++k;
      return k - i;
    }
    // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    const size_t j = is(i, ' ') && has(i + 1, CharClass::Other) ? i + 1 : i;
    if (has(j, CharClass::Other)) {
      size_t k = run_end(j, CharClass::Other);
      while (is(k, '\r') || is(k, '\n')) ++k;
      return k - i;
    }
    // \s*[\r\n]+ : up to and including the last \r or \n of the whitespace run.
    const size_t e = run_end(i, CharClass::Whitespace);
    for (size_t k = e; k > i; --k)
      if (is(k - 1, '\r') || is(k - 1, '\n')) return k - i;
    return whitespace_tail(i);
  }

  const std::vector<Unit>& u_;
  const size_t n_;
  const SplitPattern p_;
};

constexpr std::string_view kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

}  // namespace

std::optional<SplitPattern> known_split_pattern(std::string_view regex) {
  if (regex == kGpt2Regex) return SplitPattern::Gpt2;
  if (regex == kLlama3Regex) return SplitPattern::Llama3;
  if (regex == kQwen2Regex) return SplitPattern::Qwen2;
  return std::nullopt;
}

SplitPattern split_pattern_from_regex(std::string_view regex) {
  if (auto p = known_split_pattern(regex)) return *p;
  fail("unsupported pre-tokenizer split regex '", regex,
       "' (known: the GPT-2, Llama-3 and Qwen2 patterns)");
}

void split_by_pattern(std::string_view text, SplitPattern pattern, std::vector<std::string_view>& out) {
  const std::vector<Unit> units = decode_units(text);
  const Matcher m(units, pattern);
  for (size_t i = 0; i < units.size();) {
    const size_t len = m.match(i);
    const size_t end = i + len;
    const size_t begin_byte = units[i].offset;
    const size_t end_byte = end < units.size() ? units[end].offset : text.size();
    out.push_back(text.substr(begin_byte, end_byte - begin_byte));
    i = end;
  }
}

void split_digits(std::string_view text, bool individual, std::vector<std::string_view>& out) {
  const std::vector<Unit> units = decode_units(text);
  auto offset = [&](size_t k) { return k < units.size() ? units[k].offset : text.size(); };
  for (size_t i = 0; i < units.size();) {
    size_t k = i + 1;
    const bool digit = units[i].cls == CharClass::Number;
    if (!digit || !individual)
      while (k < units.size() && (units[k].cls == CharClass::Number) == digit) ++k;
    out.push_back(text.substr(offset(i), offset(k) - offset(i)));
    i = k;
  }
}

void PreTokenizer::split(std::string_view text, std::string& storage,
                         std::vector<std::string_view>& out) const {
  if (text.empty()) return;
  if (add_prefix_space && text.front() != ' ') {
    storage.clear();
    storage.reserve(text.size() + 1);
    storage.push_back(' ');
    storage.append(text);
    text = storage;
  }
  std::vector<std::string_view> pieces{text}, next;
  for (const PreTokenizeStep& step : steps) {
    next.clear();
    for (std::string_view piece : pieces) {
      if (step.kind == PreTokenizeStep::Kind::Digits)
        split_digits(piece, step.individual_digits, next);
      else if (step.kind == PreTokenizeStep::Kind::Regex)
        split_by_regex(piece, *step.regex, step.behavior, next);
      else
        split_by_pattern(piece, step.pattern, next);
    }
    pieces.swap(next);
  }
  out.insert(out.end(), pieces.begin(), pieces.end());
}

}  // namespace mf

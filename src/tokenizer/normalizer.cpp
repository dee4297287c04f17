#include "tokenizer/normalizer.h"

#include <clocale>
#include <cwctype>
#include <memory>

#include <locale.h>

#include "core/error.h"
#include "tokenizer/regex_split.h"
#include "tokenizer/unicode.h"

namespace mf {
namespace {

// The C.UTF-8 locale object, for towlower_l: glibc's case tables are Unicode's, and a locale
// object (rather than setlocale) leaves the process's global locale alone.
struct Utf8Locale {
  locale_t loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
  ~Utf8Locale() {
    if (loc) freelocale(loc);
  }
};

std::string replace_all(std::string_view text, std::string_view pattern, std::string_view with) {
  if (pattern.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  for (size_t hit; (hit = text.find(pattern, pos)) != std::string_view::npos; pos = hit + pattern.size()) {
    out.append(text.substr(pos, hit - pos));
    out.append(with);
  }
  out.append(text.substr(pos));
  return out;
}

std::string replace_matches(std::string_view text, const RegexSplitter& re, std::string_view with) {
  std::vector<std::pair<size_t, size_t>> matches;
  re.find_all(text, matches);
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  for (const auto& [b, e] : matches) {
    out.append(text.substr(pos, b - pos));
    out.append(with);
    pos = e;
  }
  out.append(text.substr(pos));
  return out;
}

// HF's Strip normalizer trims Unicode White_Space characters.
std::string strip(std::string_view text, bool left, bool right) {
  size_t b = 0, e = text.size();
  if (left)
    while (b < e) {
      const auto u = unicode::decode_utf8(text, b);
      if (!u.valid || !unicode::is_whitespace(u.cp)) break;
      b += u.length;
    }
  if (right)
    while (e > b) {
      size_t s = e - 1;
      while (s > b && (static_cast<uint8_t>(text[s]) & 0xC0) == 0x80 && e - s < 4) --s;
      const auto u = unicode::decode_utf8(text, s);
      if (s + u.length != e || !u.valid || !unicode::is_whitespace(u.cp)) break;
      e = s;
    }
  return std::string(text.substr(b, e - b));
}

// SentencePiece's remove_extra_whitespaces: no leading or trailing spaces, runs of spaces as one.
std::string collapse_spaces(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == ' ' && (out.empty() || out.back() == ' ')) continue;
    out.push_back(c);
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace

std::string lowercase(std::string_view text) {
  static const Utf8Locale locale;  // immutable after construction: the one C.UTF-8 handle
  MF_CHECK(locale.loc, "the Lowercase normalizer needs the C.UTF-8 locale, which this system lacks");
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const auto u = unicode::decode_utf8(text, pos);
    if (!u.valid) {
      out.push_back(text[pos]);
    } else if (u.cp == 0x130) {  // the one one-to-many lowercase mapping: I with dot above
      out += "i\xCC\x87";
    } else {
      unicode::append_utf8(out, static_cast<char32_t>(towlower_l(static_cast<wint_t>(u.cp), locale.loc)));
    }
    pos += u.length;
  }
  return out;
}

std::string Normalizer::apply(std::string_view text, bool continuation) const {
  std::string s(text);
  for (const NormalizeStep& step : steps) {
    switch (step.kind) {
      case NormalizeStep::Kind::Nfc: s = unicode::nfc(s); break;
      case NormalizeStep::Kind::Lowercase: s = lowercase(s); break;
      case NormalizeStep::Kind::Strip: s = strip(s, step.left, step.right); break;
      case NormalizeStep::Kind::Replace:
        s = step.regex ? replace_matches(s, *step.regex, step.content) : replace_all(s, step.pattern, step.content);
        break;
      case NormalizeStep::Kind::Prepend:
        if (!s.empty() && !continuation) s.insert(0, step.content);
        break;
      case NormalizeStep::Kind::CollapseSpaces: {
        const bool leading_space = continuation && !s.empty() && s[0] == ' ';
        s = collapse_spaces(s);
        if (leading_space) s.insert(0, " ");
        break;
      }
    }
  }
  return s;
}

}  // namespace mf

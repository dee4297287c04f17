// NFC as UAX #15 defines it: full canonical decomposition, canonical ordering of non-starters, then
// composition of unblocked pairs, with Hangul syllables computed arithmetically rather than tabled.
// Class lookups are binary searches over the generated range tables, with an ASCII fast path.
#include "tokenizer/unicode.h"

#include <algorithm>
#include <span>
#include <vector>

namespace mf::unicode {
namespace {

constexpr char32_t kHangulSBase = 0xAC00, kHangulLBase = 0x1100, kHangulVBase = 0x1161,
                   kHangulTBase = 0x11A7;
constexpr int kHangulLCount = 19, kHangulVCount = 21, kHangulTCount = 28;
constexpr int kHangulNCount = kHangulVCount * kHangulTCount, kHangulSCount = kHangulLCount * kHangulNCount;

template <class Range>
const Range* find_range(const Range* ranges, size_t count, char32_t cp) {
  const Range* end = ranges + count;
  const Range* it = std::upper_bound(ranges, end, cp,
                                     [](char32_t c, const Range& r) { return c < r.first; });
  if (it == ranges) return nullptr;
  --it;
  return cp <= it->last ? it : nullptr;
}

std::span<const char32_t> decomposition_of(char32_t cp) {
  using tables::kDecompositions;
  const auto* end = kDecompositions + tables::kDecompositionCount;
  const auto* it = std::lower_bound(kDecompositions, end, cp,
                                    [](const tables::Decomposition& d, char32_t c) { return d.cp < c; });
  if (it == end || it->cp != cp) return {};
  return {tables::kDecompositionData + it->offset, it->length};
}

void decompose_into(char32_t cp, std::vector<char32_t>& out) {
  if (cp >= kHangulSBase && cp < kHangulSBase + kHangulSCount) {
    const char32_t s = cp - kHangulSBase;
    out.push_back(kHangulLBase + s / kHangulNCount);
    out.push_back(kHangulVBase + (s % kHangulNCount) / kHangulTCount);
    if (s % kHangulTCount != 0) out.push_back(kHangulTBase + s % kHangulTCount);
    return;
  }
  auto d = decomposition_of(cp);
  if (d.empty()) {
    out.push_back(cp);
    return;
  }
  for (char32_t c : d) decompose_into(c, out);
}

// Returns 0 when the pair has no primary composite.
char32_t compose_pair(char32_t a, char32_t b) {
  if (a >= kHangulLBase && a < kHangulLBase + kHangulLCount && b >= kHangulVBase &&
      b < kHangulVBase + kHangulVCount)
    return kHangulSBase + ((a - kHangulLBase) * kHangulVCount + (b - kHangulVBase)) * kHangulTCount;
  if (a >= kHangulSBase && a < kHangulSBase + kHangulSCount && (a - kHangulSBase) % kHangulTCount == 0 &&
      b > kHangulTBase && b < kHangulTBase + kHangulTCount)
    return a + (b - kHangulTBase);
  using tables::kCompositions;
  const auto* end = kCompositions + tables::kCompositionCount;
  const auto* it = std::lower_bound(kCompositions, end, std::pair{a, b},
                                    [](const tables::Composition& c, std::pair<char32_t, char32_t> key) {
                                      return c.first != key.first ? c.first < key.first
                                                                  : c.second < key.second;
                                    });
  if (it == end || it->first != a || it->second != b) return 0;
  return it->composite;
}

// NFC of one run of valid code points.
void nfc_run(std::vector<char32_t>& cps, std::string& out) {
  std::vector<char32_t> d;
  d.reserve(cps.size() * 2);
  for (char32_t cp : cps) decompose_into(cp, d);
  // Canonical ordering: stable sort each run of non-starters by combining class.
  for (size_t i = 0; i < d.size();) {
    if (combining_class(d[i]) == 0) { ++i; continue; }
    size_t j = i;
    while (j < d.size() && combining_class(d[j]) != 0) ++j;
    std::stable_sort(d.begin() + i, d.begin() + j,
                     [](char32_t x, char32_t y) { return combining_class(x) < combining_class(y); });
    i = j;
  }
  // Canonical composition: a character combines with the last starter unless a character
  // between them has combining class 0 or >= its own (it is "blocked").
  std::vector<char32_t> r;
  r.reserve(d.size());
  size_t starter = SIZE_MAX;
  int last_ccc = -1;  // class of the last character kept after the starter; -1: none yet
  for (char32_t cp : d) {
    const int ccc = combining_class(cp);
    if (starter != SIZE_MAX && (last_ccc == -1 || (last_ccc != 0 && last_ccc < ccc))) {
      if (char32_t c = compose_pair(r[starter], cp)) {
        r[starter] = c;
        continue;
      }
    }
    if (ccc == 0) {
      starter = r.size();
      last_ccc = -1;
    } else {
      last_ccc = ccc;
    }
    r.push_back(cp);
  }
  for (char32_t cp : r) append_utf8(out, cp);
  cps.clear();
}

}  // namespace

Utf8Unit decode_utf8(std::string_view s, size_t pos) {
  const auto b0 = static_cast<uint8_t>(s[pos]);
  const Utf8Unit bad{b0, 1, false};
  if (b0 < 0x80) return {b0, 1, true};
  int n;
  char32_t cp;
  if (b0 >= 0xC2 && b0 <= 0xDF) { n = 2; cp = b0 & 0x1F; }
  else if (b0 >= 0xE0 && b0 <= 0xEF) { n = 3; cp = b0 & 0x0F; }
  else if (b0 >= 0xF0 && b0 <= 0xF4) { n = 4; cp = b0 & 0x07; }
  else return bad;
  if (pos + n > s.size()) return bad;
  for (int i = 1; i < n; ++i) {
    const auto b = static_cast<uint8_t>(s[pos + i]);
    if ((b & 0xC0) != 0x80) return bad;
    cp = (cp << 6) | (b & 0x3F);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
      (cp >= 0xD800 && cp < 0xE000))
    return bad;
  return {cp, static_cast<uint8_t>(n), true};
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t pos = 0; pos < s.size();) {
    const Utf8Unit u = decode_utf8(s, pos);
    if (u.valid)
      out.append(s.substr(pos, u.length));
    else
      append_utf8(out, U'\uFFFD');
    pos += u.length;
  }
  return out;
}

size_t complete_utf8_prefix(std::string_view s) {
  // Look back at most 3 bytes for a lead byte whose sequence runs past the end.
  const size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const auto b = static_cast<uint8_t>(s[n - back]);
    if ((b & 0xC0) == 0x80) continue;  // continuation byte: keep looking for its lead
    int need = b >= 0xF0 && b <= 0xF4 ? 4 : b >= 0xE0 && b <= 0xEF ? 3 : b >= 0xC2 && b <= 0xDF ? 2 : 1;
    return static_cast<size_t>(need) > back ? n - back : n;
  }
  return n;
}

CharClass char_class(char32_t cp) {
  if (cp < 0x80) {
    if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return CharClass::Letter;
    if (cp >= '0' && cp <= '9') return CharClass::Number;
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return CharClass::Whitespace;
    return CharClass::Other;
  }
  const auto* r = find_range(tables::kClassRanges, tables::kClassRangeCount, cp);
  return r ? r->cls : CharClass::Other;
}

uint8_t combining_class(char32_t cp) {
  if (cp < 0x300) return 0;
  const auto* r = find_range(tables::kCombiningRanges, tables::kCombiningRangeCount, cp);
  return r ? r->ccc : 0;
}

std::string nfc(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::vector<char32_t> run;
  for (size_t pos = 0; pos < s.size();) {
    const Utf8Unit u = decode_utf8(s, pos);
    if (u.valid) {
      run.push_back(u.cp);
    } else {
      nfc_run(run, out);
      out += s[pos];
    }
    pos += u.length;
  }
  nfc_run(run, out);
  return out;
}

const char* unicode_version() { return tables::kUnicodeVersion; }

}  // namespace mf::unicode

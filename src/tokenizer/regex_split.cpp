#include "tokenizer/regex_split.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cctype>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace mf {

struct RegexSplitter::Compiled {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Compiled() {
    if (code) pcre2_code_free(code);
  }
};

namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  const int n = pcre2_get_error_message(code, buf, sizeof buf);
  return n < 0 ? "PCRE2 error " + std::to_string(code) : std::string(reinterpret_cast<const char*>(buf), size_t(n));
}

struct MatchData {
  pcre2_match_data* md;
  explicit MatchData(const pcre2_code* code) : md(pcre2_match_data_create_from_pattern(code, nullptr)) {
    MF_CHECK(md, "PCRE2: out of memory for match data");
  }
  ~MatchData() { pcre2_match_data_free(md); }
  MatchData(const MatchData&) = delete;
  MatchData& operator=(const MatchData&) = delete;
};

}  // namespace

RegexSplitter::RegexSplitter(std::string_view pattern) : pattern_(pattern), compiled_(std::make_unique<Compiled>()) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  compiled_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                  PCRE2_UTF | PCRE2_UCP, &err, &offset, nullptr);
  MF_CHECK(compiled_->code, "pre-tokenizer regex '", pattern_, "' does not compile (PCRE2, at offset ", offset,
           "): ", pcre2_message(err));
  compiled_->jit = pcre2_jit_compile(compiled_->code, PCRE2_JIT_COMPLETE) == 0;
}

RegexSplitter::~RegexSplitter() = default;

void RegexSplitter::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const {
  MatchData m(compiled_->code);
  // Valid stretches one at a time: PCRE2 in UTF mode refuses ill-formed UTF-8.
  for (size_t run = 0; run < text.size();) {
    size_t end = run;
    while (end < text.size()) {
      const auto u = unicode::decode_utf8(text, end);
      if (!u.valid) break;
      end += u.length;
    }
    const std::string_view s = text.substr(run, end - run);
    for (size_t pos = 0; pos < s.size();) {
      int rc = pcre2_match(compiled_->code, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), pos, PCRE2_NO_UTF_CHECK,
                           m.md, nullptr);
      if (rc == PCRE2_ERROR_JIT_STACKLIMIT)  // the interpreter keeps its backtracking on the heap
        rc = pcre2_match(compiled_->code, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), pos,
                         PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, m.md, nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      MF_CHECK(rc >= 0, "pre-tokenizer regex '", pattern_, "': ", pcre2_message(rc));
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(m.md);
      const size_t b = ov[0], e = ov[1];
      if (e > b) {
        out.emplace_back(run + b, run + e);
        pos = e;
      } else {
        pos = b + unicode::decode_utf8(s, b).length;  // empty match: on to the next character
      }
    }
    run = end;
    if (run < text.size()) ++run;  // the ill-formed byte
  }
}

std::string regex_literal(std::string_view text) {
  std::string out;
  for (char ch : text) {
    const auto u = static_cast<unsigned char>(ch);
    if (u < 0x80 && !std::isalnum(u) && ch != ' ') out.push_back('\\');
    out.push_back(ch);
  }
  return out;
}

void split_by_regex(std::string_view text, const RegexSplitter& re, SplitBehavior behavior,
                    std::vector<std::string_view>& out) {
  std::vector<std::pair<size_t, size_t>> matches;
  re.find_all(text, matches);
  // (begin, end, is_match) spans covering the text.
  struct Span {
    size_t b, e;
    bool match;
  };
  std::vector<Span> spans;
  size_t pos = 0;
  for (const auto& [b, e] : matches) {
    if (b > pos) spans.push_back({pos, b, false});
    if (behavior == SplitBehavior::Contiguous && !spans.empty() && spans.back().match && spans.back().e == b)
      spans.back().e = e;
    else
      spans.push_back({b, e, true});
    pos = e;
  }
  if (pos < text.size()) spans.push_back({pos, text.size(), false});
  auto emit = [&](size_t b, size_t e) {
    if (e > b) out.push_back(text.substr(b, e - b));
  };
  switch (behavior) {
    case SplitBehavior::Isolated:
    case SplitBehavior::Contiguous:
      for (const Span& s : spans) emit(s.b, s.e);
      return;
    case SplitBehavior::Removed:
      for (const Span& s : spans)
        if (!s.match) emit(s.b, s.e);
      return;
    case SplitBehavior::MergedWithPrevious: {
      size_t start = 0;  // a match closes the piece before it
      for (const Span& s : spans)
        if (s.match) {
          emit(start, s.e);
          start = s.e;
        }
      emit(start, text.size());
      return;
    }
    case SplitBehavior::MergedWithNext: {
      size_t start = 0;  // a match opens a new piece
      for (const Span& s : spans)
        if (s.match) {
          emit(start, s.b);
          start = s.b;
        }
      emit(start, text.size());
      return;
    }
  }
}

}  // namespace mf

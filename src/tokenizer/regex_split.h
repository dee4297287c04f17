// Any pre-tokenizer regex of a tokenizer.json, through PCRE2 (UTF + Unicode properties, JIT when
// the library has it): the general path beside the hand-written matchers of pretokenize.cpp,
// which stay the fast path for the regexes they know (a test checks both give the same pieces).
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mf {

// HF's SplitDelimiterBehavior: what happens to each match and the text between matches.
enum class SplitBehavior { Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous };

class RegexSplitter {
 public:
  // Throws mf::Error with PCRE2's message and offset when the pattern does not compile.
  explicit RegexSplitter(std::string_view pattern);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  // Byte ranges [begin, end) of the non-empty matches in `text`, left to right (an empty match
  // moves the search on by one character, as Oniguruma's find_iter does). Text that is not
  // valid UTF-8 is searched in its valid stretches; an ill-formed byte never matches.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;
  const std::string& pattern() const { return pattern_; }

 private:
  struct Compiled;
  std::string pattern_;
  std::unique_ptr<Compiled> compiled_;
};

// A regex matching `text` literally (every ASCII punctuation character escaped).
std::string regex_literal(std::string_view text);

// Splits `text` by the matches of `re` under `behavior`, appending non-empty pieces to `out`.
void split_by_regex(std::string_view text, const RegexSplitter& re, SplitBehavior behavior,
                    std::vector<std::string_view>& out);

}  // namespace mf

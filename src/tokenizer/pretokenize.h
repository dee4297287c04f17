// Pre-tokenization: splits text into the pieces that BPE encodes independently, reproducing
// the HF `tokenizers` pre-tokenizers (Oniguruma regexes) by hand over Unicode code points for
// the known regexes, and through PCRE2 (regex_split.h) for any other.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mf {

// The split regexes we know. Each matches exactly what its HF regex matches:
//  Gpt2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//  Llama3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//          ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//  Qwen2:  as Llama3 with \p{N} instead of \p{N}{1,3}
enum class SplitPattern { Gpt2, Llama3, Qwen2 };

// Returns the pattern whose HF regex source is `regex`, or throws mf::Error.
SplitPattern split_pattern_from_regex(std::string_view regex);
// The same, or nullopt for a regex with no hand-written matcher.
std::optional<SplitPattern> known_split_pattern(std::string_view regex);

class RegexSplitter;
enum class SplitBehavior;

struct PreTokenizeStep {
  enum class Kind { Digits, Split, Regex } kind;
  bool individual_digits = false;        // Digits: each digit alone, else runs of digits
  SplitPattern pattern = SplitPattern::Gpt2;
  std::shared_ptr<const RegexSplitter> regex;   // Regex: compiled once, shared by copies
  SplitBehavior behavior{};                      // Regex: HF's Split behavior (Isolated = 0)
};

struct PreTokenizer {
  std::vector<PreTokenizeStep> steps;   // applied in order, each to every piece of the last
  bool add_prefix_space = false;        // ByteLevel: prepend ' ' unless the text starts with one
  // Appends the pieces of `text` to `out`; pieces view `text` (or `storage` for a prefix space).
  void split(std::string_view text, std::string& storage, std::vector<std::string_view>& out) const;
};

// One regex split over a string (all pieces, in order, covering the whole input).
void split_by_pattern(std::string_view text, SplitPattern pattern, std::vector<std::string_view>& out);
// Digits pre-tokenizer: numbers (\p{N}) isolated, each alone or as runs.
void split_digits(std::string_view text, bool individual, std::vector<std::string_view>& out);

}  // namespace mf

// Text normalization before a model splits text into tokens: the HF `tokenizers` normalizers
// the common models use (NFC, Lowercase, Strip, Replace with a string or a regex, Prepend), in
// order, and SentencePiece's own whitespace rules for tokenizer.model files.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mf {

class RegexSplitter;

struct NormalizeStep {
  enum class Kind { Nfc, Lowercase, Strip, Replace, Prepend, CollapseSpaces } kind;
  std::string pattern;      // Replace: the literal text replaced (when regex is null)
  std::shared_ptr<const RegexSplitter> regex;  // Replace with {"Regex": ...}: PCRE2
  std::string content;      // Replace: its replacement; Prepend: the prefix
  bool left = false, right = false;  // Strip: which ends lose their whitespace

  static NormalizeStep replace(std::string pattern, std::string with) {
    NormalizeStep s{Kind::Replace};
    s.pattern = std::move(pattern);
    s.content = std::move(with);
    return s;
  }
  static NormalizeStep prepend(std::string prefix) {
    NormalizeStep s{Kind::Prepend};
    s.content = std::move(prefix);
    return s;
  }
};

struct Normalizer {
  std::vector<NormalizeStep> steps;
  // The normalized text; an empty input stays empty (HF's Prepend adds nothing to "").
  // continuation: `text` continues a text normalized before it (Tokenizer::encode_continuation):
  // Prepend adds nothing and collapsing spaces keeps one leading space, as inside the whole text.
  std::string apply(std::string_view text, bool continuation = false) const;
  bool empty() const { return steps.empty(); }
};

// Unicode lowercase of UTF-8 text as Rust's str::to_lowercase (what HF's Lowercase uses) for
// every one-to-one mapping and U+0130; invalid bytes pass through.
std::string lowercase(std::string_view utf8);

}  // namespace mf

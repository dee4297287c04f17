// Added tokens (special or not) split out of the text before the model sees it, as HF
// `tokenizers` does: leftmost match, longest first among candidates at one position, with the
// lstrip / rstrip / single_word options. Shared by the byte-level BPE and SentencePiece models.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mf {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;      // matched only when parse_special; skipped by skip_special decode
  bool lstrip = false;       // absorbs whitespace on its left
  bool rstrip = false;       // absorbs whitespace on its right
  bool single_word = false;  // matches only when not inside a word
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);

  struct Match {
    const AddedToken* token = nullptr;  // null: no added token at or after `pos`
    size_t begin = 0, end = 0;          // byte range absorbed, including stripped whitespace
  };
  // Leftmost-longest added-token match at or after `pos`; `floor` bounds lstrip absorption.
  Match find(std::string_view text, size_t pos, size_t floor, bool parse_special) const;
  bool empty() const { return tokens_.empty(); }
  const std::vector<AddedToken>& tokens() const { return tokens_; }

  // Calls on_text(segment) for the text between added tokens (possibly empty) and on_token(id)
  // for each added token, in order.
  template <class OnText, class OnToken>
  void split(std::string_view text, bool parse_special, OnText&& on_text, OnToken&& on_token) const {
    size_t seg_begin = 0;
    for (size_t pos = 0; pos < text.size();) {
      const Match m = find(text, pos, seg_begin, parse_special);
      if (!m.token) break;
      on_text(text.substr(seg_begin, m.begin - seg_begin));
      on_token(m.token->id);
      seg_begin = pos = m.end;
    }
    on_text(text.substr(seg_begin));
  }

 private:
  std::vector<AddedToken> tokens_;                      // longest first
  std::array<std::vector<size_t>, 256> by_first_byte_;  // indices into tokens_
};

}  // namespace mf

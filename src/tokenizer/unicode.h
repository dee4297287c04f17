// Unicode helpers for tokenization: UTF-8 decoding that never fails, the character classes the
// pre-tokenizer regexes use, and NFC normalization. Tables: unicode_tables.cpp (generated).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "tokenizer/unicode_tables.h"

namespace mf::unicode {

// One decoded unit of a UTF-8 string. An ill-formed byte (stray continuation byte, truncated
// or overlong sequence, surrogate, > U+10FFFF) decodes as a unit of length 1 with valid=false,
// so every input byte belongs to exactly one unit and nothing is lost.
struct Utf8Unit {
  char32_t cp;     // the code point; for an invalid unit, the raw byte value
  uint8_t length;  // bytes consumed, 1..4
  bool valid;
};
Utf8Unit decode_utf8(std::string_view s, size_t pos);
void append_utf8(std::string& out, char32_t cp);
// Length of the longest prefix of `s` that does not end inside a possibly-incomplete UTF-8
// sequence (a trailing lead byte still waiting for continuation bytes).
size_t complete_utf8_prefix(std::string_view s);
// s with every ill-formed unit replaced by U+FFFD: safe to quote into JSON or a terminal.
std::string valid_utf8(std::string_view s);

CharClass char_class(char32_t cp);
inline bool is_letter(char32_t cp) { return char_class(cp) == CharClass::Letter; }
inline bool is_number(char32_t cp) { return char_class(cp) == CharClass::Number; }
inline bool is_whitespace(char32_t cp) { return char_class(cp) == CharClass::Whitespace; }

uint8_t combining_class(char32_t cp);
// Canonical composition (NFC). Invalid UTF-8 bytes pass through unchanged. Tables are Unicode
// 16; HF `tokenizers` normalizes with older data, so the two differ only for combining marks
// and compositions added in recent Unicode versions (e.g. U+1ABF, U+11938).
std::string nfc(std::string_view utf8);

const char* unicode_version();

}  // namespace mf::unicode

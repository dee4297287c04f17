// GPT-2's reversible byte <-> unicode mapping: byte-level BPE vocabularies store every byte as
// a printable code point (printable Latin-1 bytes as themselves, the rest shifted to U+0100+).
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace mf::byte_level {

char32_t byte_to_char(uint8_t b);
std::optional<uint8_t> char_to_byte(char32_t c);
// Bytes -> their byte-level string (UTF-8 of the mapped code points).
std::string encode(std::string_view bytes);
// Byte-level string -> bytes; nullopt if any code point is outside the mapping.
std::optional<std::string> decode(std::string_view token);

}  // namespace mf::byte_level

#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/unicode.h"

namespace mf::byte_level {
namespace {

bool kept_as_is(int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); }

struct Maps {
  std::array<char32_t, 256> to_char{};
  std::array<std::string, 256> to_utf8{};
  Maps() {
    int shifted = 0;
    for (int b = 0; b < 256; ++b) {
      to_char[b] = kept_as_is(b) ? char32_t(b) : char32_t(256 + shifted++);
      unicode::append_utf8(to_utf8[b], to_char[b]);
    }
  }
};

const Maps& maps() {
  static const Maps m;  // immutable after construction
  return m;
}

}  // namespace

char32_t byte_to_char(uint8_t b) { return maps().to_char[b]; }

std::optional<uint8_t> char_to_byte(char32_t c) {
  if (c < 256 && kept_as_is(static_cast<int>(c))) return static_cast<uint8_t>(c);
  if (c < 256 || c >= 256 + 68) return std::nullopt;  // 68 bytes are shifted
  const char32_t k = c - 256;
  // The shifted bytes in order: 0x00-0x20, 0x7F-0xA0, 0xAD.
  if (k <= 0x20) return static_cast<uint8_t>(k);
  if (k <= 0x20 + 34) return static_cast<uint8_t>(0x7F + (k - 0x21));
  return static_cast<uint8_t>(0xAD);
}

std::string encode(std::string_view bytes) {
  const Maps& m = maps();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char ch : bytes) out += m.to_utf8[static_cast<uint8_t>(ch)];
  return out;
}

std::optional<std::string> decode(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  for (size_t pos = 0; pos < token.size();) {
    const auto u = unicode::decode_utf8(token, pos);
    if (!u.valid) return std::nullopt;
    auto b = char_to_byte(u.cp);
    if (!b) return std::nullopt;
    out += static_cast<char>(*b);
    pos += u.length;
  }
  return out;
}

}  // namespace mf::byte_level

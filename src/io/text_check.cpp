#include "io/text_check.h"

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace mf {

namespace {

int64_t line_of(std::string_view text, size_t offset, int64_t first_line) {
  return first_line + std::count(text.begin(), text.begin() + long(offset), '\n');
}

}  // namespace

void check_text(std::string_view text, const std::string& path, int64_t first_line) {
  const size_t nul = text.find('\0');
  MF_CHECK(nul == std::string_view::npos, path, ":", line_of(text, nul, first_line),
           ": looks like a binary file, not text (a NUL byte)");
  for (size_t pos = 0; pos < text.size();) {
    const unicode::Utf8Unit u = unicode::decode_utf8(text, pos);
    if (!u.valid) {
      char byte[8];
      std::snprintf(byte, sizeof byte, "0x%02x", unsigned(uint8_t(text[pos])));
      fail(path, ":", line_of(text, pos, first_line), ": not UTF-8 text (byte ", byte,
           "); convert the file to UTF-8 first (e.g. iconv -f latin1 -t utf-8)");
    }
    pos += u.length;
  }
}

}  // namespace mf

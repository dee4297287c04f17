// The one rule for files that must be text (training text, recipes, dataset text): no NUL byte
// (a binary file named .txt) and well-formed UTF-8 (a file in another encoding would train on,
// or show, mojibake). Every text reader calls it before using the bytes.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace mf {

// Throws mf::Error naming `path`, the line and the byte offset of the first offending byte.
// `first_line` is the line number of text's first line, for readers that go line by line.
void check_text(std::string_view text, const std::string& path, int64_t first_line = 1);

}  // namespace mf

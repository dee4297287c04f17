// Splits a Jinja2 template into text, {{ expression }} and {% statement %} segments, applying
// whitespace control exactly as Jinja2 does with trim_blocks and lstrip_blocks (the settings
// transformers uses for chat templates): `{%-`/`-%}` strip, `{%+`/`+%}` keep, comments vanish,
// newlines are normalised to "\n" and one trailing newline of the source is dropped.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace mf::jinja {

struct Token {
  enum Kind { Name, String, Int, Float, Op } kind;
  std::string text;   // for String: the unescaped value
  size_t pos = 0;     // byte offset in the (normalised) source
};

struct Segment {
  enum Kind { Text, Expr, Stmt } kind;
  std::string text;            // Text only
  std::vector<Token> tokens;   // Expr/Stmt
  size_t pos = 0;
};

struct LexOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
};

struct Lexed {
  std::string source;          // normalised source the positions refer to
  std::vector<Segment> segments;
};

// Throws mf::Error "<name>:<line>:<col>: ..." on an unterminated tag, string or comment.
Lexed lex_template(const std::string& source, const std::string& name, LexOptions opts = {});

// "name:line:col" for a byte offset, used by every template error.
std::string template_position(const std::string& source, const std::string& name, size_t pos);

}  // namespace mf::jinja

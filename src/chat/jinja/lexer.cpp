// The lexer makes one pass: the text before each tag is trimmed when the tag's opener is found, and
// the tag's tokens are read up to its closer while tracking bracket nesting, so a "}}" inside a
// dict literal does not end the tag. String literals are decoded with Python's escapes.
#include "chat/jinja/lexer.h"

#include <cctype>
#include <cstring>

#include "core/error.h"

namespace mf::jinja {

std::string template_position(const std::string& source, const std::string& name, size_t pos) {
  size_t line = 1, col = 1;
  for (size_t i = 0; i < pos && i < source.size(); ++i) {
    if (source[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return cat(name, ":", line, ":", col);
}

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

class Lexer {
 public:
  Lexer(std::string src, const std::string& name, LexOptions opts)
      : src_(std::move(src)), name_(name), opts_(opts) {}

  Lexed run() {
    Lexed out;
    size_t pos = 0;
    bool line_starting = true;
    while (pos < src_.size()) {
      size_t t = find_opener(pos);
      if (t == std::string::npos) {
        push_text(out, src_.substr(pos), pos);
        break;
      }
      std::string text = src_.substr(pos, t - pos);
      char kind = src_[t + 1];
      size_t p = t + 2;
      char sign = 0;
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) sign = src_[p++];
      if (sign == '-') {
        size_t end = text.size();
        while (end > 0 && is_space(text[end - 1])) --end;
        text.resize(end);
      } else if (sign != '+' && opts_.lstrip_blocks && kind != '{') {
        // Drop the indentation before a block tag that starts its line.
        size_t l_pos = text.rfind('\n');
        l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
        if (l_pos > 0 || line_starting) {
          bool only_ws = true;
          for (size_t i = l_pos; i < text.size(); ++i)
            if (!is_space(text[i])) only_ws = false;
          if (only_ws) text.resize(l_pos);
        }
      }
      push_text(out, text, pos);

      size_t closer_end;  // just past "}}", "%}" or "#}"
      char close_sign = 0;
      if (kind == '#') {
        size_t e = src_.find("#}", p);
        if (e == std::string::npos) fail_at(t, "unterminated comment");
        if (e > p && (src_[e - 1] == '-' || src_[e - 1] == '+')) close_sign = src_[e - 1];
        closer_end = e + 2;
      } else {
        Segment seg{kind == '{' ? Segment::Expr : Segment::Stmt, "", {}, t};
        closer_end = lex_tag(p, kind == '{' ? '}' : '%', seg.tokens, close_sign, t);
        out.segments.push_back(std::move(seg));
      }
      size_t next = closer_end;
      if (close_sign == '-') {
        while (next < src_.size() && is_space(src_[next])) ++next;
      } else if (close_sign != '+' && kind != '{' && opts_.trim_blocks && next < src_.size() &&
                 src_[next] == '\n') {
        ++next;
      }
      line_starting = next > closer_end && src_[next - 1] == '\n';
      pos = next;
    }
    out.source = src_;
    return out;
  }

 private:
  [[noreturn]] void fail_at(size_t pos, const std::string& what) {
    fail("chat template ", template_position(src_, name_, pos), ": ", what);
  }

  size_t find_opener(size_t from) const {
    for (size_t i = from; i + 1 < src_.size(); ++i)
      if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    return std::string::npos;
  }

  static void push_text(Lexed& out, std::string text, size_t pos) {
    if (!text.empty()) out.segments.push_back({Segment::Text, std::move(text), {}, pos});
  }

  // Tokens up to the closing delimiter (`close` is '}' for "}}" or '%' for "%}"); an end
  // delimiter inside open brackets belongs to the expression, as in Jinja2.
  size_t lex_tag(size_t p, char close, std::vector<Token>& tokens, char& close_sign, size_t tag_pos) {
    std::string stack;
    while (true) {
      while (p < src_.size() && is_space(src_[p])) ++p;
      if (p >= src_.size()) fail_at(tag_pos, close == '}' ? "unterminated '{{'" : "unterminated '{%'");
      if (stack.empty()) {
        for (char s : {'-', '+', '\0'}) {
          size_t q = p + (s ? 1 : 0);
          if (s && (p >= src_.size() || src_[p] != s)) continue;
          if (s == '+' && close == '}') continue;
          if (q + 1 < src_.size() && src_[q] == close && src_[q + 1] == '}') {
            close_sign = s;
            return q + 2;
          }
        }
      }
      char c = src_[p];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t s = p;
        while (p < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[p])) || src_[p] == '_')) ++p;
        tokens.push_back({Token::Name, src_.substr(s, p - s), s});
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        size_t s = p;
        while (p < src_.size() && std::isdigit(static_cast<unsigned char>(src_[p]))) ++p;
        bool is_float = false;
        if (p + 1 < src_.size() && src_[p] == '.' && std::isdigit(static_cast<unsigned char>(src_[p + 1]))) {
          is_float = true;
          ++p;
          while (p < src_.size() && std::isdigit(static_cast<unsigned char>(src_[p]))) ++p;
        }
        if (p < src_.size() && (src_[p] == 'e' || src_[p] == 'E')) {  // 1e3, 2.5e-4
          size_t q = p + 1;
          if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
          if (q < src_.size() && std::isdigit(static_cast<unsigned char>(src_[q]))) {
            is_float = true;
            p = q;
            while (p < src_.size() && std::isdigit(static_cast<unsigned char>(src_[p]))) ++p;
          }
        }
        tokens.push_back({is_float ? Token::Float : Token::Int, src_.substr(s, p - s), s});
      } else if (c == '\'' || c == '"') {
        size_t s = p;
        tokens.push_back({Token::String, lex_string(p), s});
      } else {
        static const char* const two[] = {"//", "**", "==", "!=", "<=", ">="};
        std::string op;
        for (const char* t : two)
          if (src_.compare(p, 2, t) == 0) op = t;
        if (op.empty()) {
          if (!std::strchr("+-*/%~<>=()[]{}.,:|", c)) fail_at(p, cat("unexpected character '", c, "'"));
          op = std::string(1, c);
          if (c == '(' || c == '[' || c == '{') stack += c;
          if (c == ')' || c == ']' || c == '}') {
            char want = c == ')' ? '(' : c == ']' ? '[' : '{';
            if (stack.empty() || stack.back() != want) fail_at(p, cat("unbalanced '", c, "'"));
            stack.pop_back();
          }
        }
        tokens.push_back({Token::Op, op, p});
        p += op.size();
      }
    }
  }

  // Python string-literal escapes (Jinja2 decodes literals with "unicode-escape").
  std::string lex_string(size_t& p) {
    char quote = src_[p];
    size_t start = p++;
    std::string out;
    while (true) {
      if (p >= src_.size()) fail_at(start, "unterminated string literal");
      char c = src_[p++];
      if (c == quote) return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (p >= src_.size()) fail_at(start, "unterminated string literal");
      char e = src_[p++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case 'a': out += '\a'; break;
        case '0': out += '\0'; break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case '\n': break;  // line continuation
        case 'x': case 'u': case 'U': {
          int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (p + size_t(n) > src_.size()) fail_at(p, "truncated escape in string literal");
          uint32_t cp = 0;
          for (int i = 0; i < n; ++i) {
            char h = src_[p++];
            if (!std::isxdigit(static_cast<unsigned char>(h))) fail_at(p - 1, "bad hex escape in string literal");
            cp = cp * 16 + uint32_t(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
          }
          if (cp > 0x10FFFF) fail_at(p, "escape beyond U+10FFFF in string literal");
          append_utf8(out, cp);
          break;
        }
        default:
          out += '\\';
          out += e;
      }
    }
  }

  std::string src_;
  const std::string& name_;
  LexOptions opts_;
};

std::string normalise_newlines(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r') {
      out += '\n';
      if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
    } else {
      out += s[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();  // keep_trailing_newline=False
  return out;
}

}  // namespace

Lexed lex_template(const std::string& source, const std::string& name, LexOptions opts) {
  return Lexer(normalise_newlines(source), name, opts).run();
}

}  // namespace mf::jinja

// Recursive descent with one method per precedence level, named and ordered as in Jinja2's
// parser.py (or, and, not, compare, math1, concat, math2, pow, unary), so that operators bind
// as they do in Jinja2 (`~` tighter than `+`, comparisons chained as in Python).
#include "chat/jinja/parser.h"

#include <algorithm>
#include <initializer_list>

#include "chat/jinja/limits.h"
#include "core/error.h"

namespace mf::jinja {
namespace {

ExprPtr make(Expr::Kind k, size_t pos) {
  auto e = std::make_unique<Expr>();
  e->kind = k;
  e->pos = pos;
  return e;
}

class Parser {
 public:
  Parser(const Lexed& lexed, const std::string& name) : lexed_(lexed), name_(name) {}

  Body parse_all() {
    std::string found;
    Body body = parse_body({}, found);
    return body;
  }

 private:
  // ---- statements -------------------------------------------------------------------------
  // Parses segments until a statement whose keyword is in `ends` (left current, its keyword
  // consumed) or the end of input (only allowed when `ends` is empty).
  Body parse_body(std::initializer_list<const char*> ends, std::string& found) {
    const Nesting guard(*this, statements_, kMaxStatementNesting, "statements");
    Body body;
    while (seg_ < lexed_.segments.size()) {
      const Segment& s = lexed_.segments[seg_];
      if (s.kind == Segment::Text) {
        auto n = node(Node::Text, s.pos);
        n->text = s.text;
        body.push_back(std::move(n));
        ++seg_;
        continue;
      }
      begin_segment();
      if (s.kind == Segment::Expr) {
        auto n = node(Node::Output, s.pos);
        n->expr = parse_expression();
        expect_end();
        body.push_back(std::move(n));
        continue;
      }
      const Token& kw = expect_name();
      for (const char* e : ends)
        if (kw.text == e) {
          found = kw.text;
          return body;
        }
      body.push_back(parse_statement(kw));
    }
    if (ends.size() != 0) {
      std::string want;
      for (const char* e : ends) want += std::string(want.empty() ? "" : " or ") + "'" + e + "'";
      fail("chat template ", template_position(lexed_.source, name_, lexed_.source.size()),
           ": unexpected end of template, expected ", want);
    }
    return body;
  }

  std::unique_ptr<Node> parse_statement(const Token& kw) {
    const std::string& k = kw.text;
    if (k == "if") return parse_if(kw.pos);
    if (k == "for") return parse_for(kw.pos);
    if (k == "set") return parse_set(kw.pos);
    if (k == "macro") return parse_macro(kw.pos);
    if (k == "break" || k == "continue") {
      auto n = node(k == "break" ? Node::Break : Node::Continue, kw.pos);
      expect_end();
      return n;
    }
    if (k == "generation") {  // transformers' assistant-mask marker: render the body as is
      auto n = node(Node::Block, kw.pos);
      expect_end();
      std::string found;
      n->body = parse_body({"endgeneration"}, found);
      expect_end();
      return n;
    }
    error_at(kw.pos, cat("unknown or unsupported statement '", k, "'"));
  }

  std::unique_ptr<Node> parse_if(size_t pos) {
    auto n = node(Node::If, pos);
    ExprPtr cond = parse_expression();
    expect_end();
    while (true) {
      std::string found;
      Body b = parse_body({"elif", "else", "endif"}, found);
      n->branches.emplace_back(std::move(cond), std::move(b));
      if (found == "endif") break;
      if (found == "elif") {
        cond = parse_expression();
        expect_end();
      } else {  // else
        expect_end();
        std::string f2;
        Body eb = parse_body({"endif"}, f2);
        n->branches.emplace_back(nullptr, std::move(eb));
        break;
      }
    }
    expect_end();
    return n;
  }

  std::unique_ptr<Node> parse_for(size_t pos) {
    auto n = node(Node::For, pos);
    do {
      n->targets.push_back(expect_name().text);
    } while (skip_op(","));
    if (!skip_name("in")) error_here("expected 'in' in for loop");
    n->expr = parse_expression(false);
    if (skip_name("if")) n->filter = parse_expression();
    if (skip_name("recursive")) error_here("recursive for loops are not supported");
    expect_end();
    std::string found;
    n->body = parse_body({"else", "endfor"}, found);
    if (found == "else") {
      expect_end();
      n->else_body = parse_body({"endfor"}, found);
    }
    expect_end();
    return n;
  }

  std::unique_ptr<Node> parse_set(size_t pos) {
    std::string target = expect_name().text;
    if (skip_op(".")) {
      auto n = node(Node::Set, pos);
      n->targets.push_back(target);
      n->attr = expect_name().text;
      if (!skip_op("=")) error_here("expected '=' in set");
      n->expr = parse_expression();
      expect_end();
      return n;
    }
    if (at_end()) {  // {% set x %}...{% endset %}
      auto n = node(Node::SetBlock, pos);
      n->targets.push_back(target);
      expect_end();
      std::string found;
      n->body = parse_body({"endset"}, found);
      expect_end();
      return n;
    }
    auto n = node(Node::Set, pos);
    n->targets.push_back(target);
    while (skip_op(",")) n->targets.push_back(expect_name().text);
    if (!skip_op("=")) error_here("expected '=' in set");
    n->expr = parse_expression();
    expect_end();
    return n;
  }

  std::unique_ptr<Node> parse_macro(size_t pos) {
    auto n = node(Node::Macro, pos);
    n->targets.push_back(expect_name().text);
    if (!skip_op("(")) error_here("expected '(' after macro name");
    if (!skip_op(")")) {
      do {
        std::string p = expect_name().text;
        ExprPtr def;
        if (skip_op("=")) def = parse_expression();
        n->params.emplace_back(p, std::move(def));
      } while (skip_op(","));
      if (!skip_op(")")) error_here("expected ')' after macro parameters");
    }
    expect_end();
    std::string found;
    n->body = parse_body({"endmacro"}, found);
    if (!at_end()) expect_name();  // {% endmacro name %}
    expect_end();
    return n;
  }

  // ---- expressions ------------------------------------------------------------------------
  ExprPtr parse_expression(bool with_cond = true) {
    const Nesting guard(*this, expressions_, kMaxExpressionNesting, "expressions");
    if (!with_cond) return parse_or();
    ExprPtr e = parse_or();
    while (peek_name("if")) {
      size_t pos = tok().pos;
      ++tok_;
      auto c = make(Expr::Cond, pos);
      c->b = parse_or();
      c->a = std::move(e);
      if (skip_name("else")) c->c = parse_expression();
      e = seal(std::move(c));
    }
    return e;
  }

  // Records e's height from its children's, refusing a tree the evaluator (and the destructor)
  // would have to recurse through too deeply; chains like a+b+c+... grow it without nesting.
  ExprPtr seal(ExprPtr e) {
    int h = 0;
    for (const ExprPtr* c : {&e->a, &e->b, &e->c, &e->d})
      if (*c) h = std::max(h, (*c)->height);
    for (const ExprPtr& c : e->args) h = std::max(h, c->height);
    for (const auto& kv : e->kwargs) h = std::max(h, kv.second->height);
    e->height = h + 1;
    if (e->height > kMaxExpressionHeight)
      error_at(e->pos, cat("expression nested deeper than ", kMaxExpressionHeight, " levels"));
    return e;
  }

  ExprPtr binary(const std::string& op, ExprPtr a, ExprPtr b, size_t pos) {
    auto e = make(Expr::Binary, pos);
    e->name = op;
    e->a = std::move(a);
    e->b = std::move(b);
    return seal(std::move(e));
  }

  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (peek_name("or")) {
      size_t p = tok().pos;
      ++tok_;
      e = binary("or", std::move(e), parse_and(), p);
    }
    return e;
  }
  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (peek_name("and")) {
      size_t p = tok().pos;
      ++tok_;
      e = binary("and", std::move(e), parse_not(), p);
    }
    return e;
  }
  ExprPtr parse_not() {
    if (peek_name("not")) {
      const Nesting guard(*this, expressions_, kMaxExpressionNesting, "expressions");
      auto e = make(Expr::Unary, tok().pos);
      ++tok_;
      e->name = "not";
      e->a = parse_not();
      return seal(std::move(e));
    }
    return parse_compare();
  }
  ExprPtr parse_compare() {
    ExprPtr first = parse_math1();
    ExprPtr cmp;
    while (true) {
      std::string op;
      size_t p = has() ? tok().pos : 0;
      if (peek_op("==") || peek_op("!=") || peek_op("<") || peek_op(">") || peek_op("<=") ||
          peek_op(">=")) {
        op = tok().text;
        ++tok_;
      } else if (peek_name("in")) {
        op = "in";
        ++tok_;
      } else if (peek_name("not") && tok_ + 1 < toks().size() && toks()[tok_ + 1].kind == Token::Name &&
                 toks()[tok_ + 1].text == "in") {
        op = "not in";
        tok_ += 2;
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(Expr::Compare, p);
        cmp->args.push_back(std::move(first));
      }
      cmp->ops.push_back(op);
      cmp->args.push_back(parse_math1());
    }
    return cmp ? seal(std::move(cmp)) : std::move(first);
  }
  ExprPtr parse_math1() {
    ExprPtr e = parse_concat();
    while (peek_op("+") || peek_op("-")) {
      std::string op = tok().text;
      size_t p = tok().pos;
      ++tok_;
      e = binary(op, std::move(e), parse_concat(), p);
    }
    return e;
  }
  ExprPtr parse_concat() {
    ExprPtr e = parse_math2();
    while (peek_op("~")) {
      size_t p = tok().pos;
      ++tok_;
      e = binary("~", std::move(e), parse_math2(), p);
    }
    return e;
  }
  ExprPtr parse_math2() {
    ExprPtr e = parse_pow();
    while (peek_op("*") || peek_op("/") || peek_op("//") || peek_op("%")) {
      std::string op = tok().text;
      size_t p = tok().pos;
      ++tok_;
      e = binary(op, std::move(e), parse_pow(), p);
    }
    return e;
  }
  ExprPtr parse_pow() {
    ExprPtr e = parse_unary(true);
    while (peek_op("**")) {
      size_t p = tok().pos;
      ++tok_;
      e = binary("**", std::move(e), parse_unary(true), p);
    }
    return e;
  }
  ExprPtr parse_unary(bool with_filter) {
    ExprPtr e;
    if (peek_op("-") || peek_op("+")) {
      const Nesting guard(*this, expressions_, kMaxExpressionNesting, "expressions");
      e = make(Expr::Unary, tok().pos);
      e->name = tok().text;
      ++tok_;
      e->a = parse_unary(false);
      e = seal(std::move(e));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  ExprPtr parse_primary() {
    if (!has()) error_here("expected an expression");
    const Token& t = tok();
    if (t.kind == Token::Name) {
      ++tok_;
      if (t.text == "true" || t.text == "True") return literal(Value(true), t.pos);
      if (t.text == "false" || t.text == "False") return literal(Value(false), t.pos);
      if (t.text == "none" || t.text == "None") return literal(Value(None{}), t.pos);
      auto e = make(Expr::Name, t.pos);
      e->name = t.text;
      return e;
    }
    if (t.kind == Token::String) {
      std::string s;
      size_t pos = t.pos;
      while (has() && tok().kind == Token::String) s += toks()[tok_++].text;  // "a" "b" joins
      return literal(Value(std::move(s)), pos);
    }
    if (t.kind == Token::Int) {
      ++tok_;
      return literal(Value(int_literal(t)), t.pos);
    }
    if (t.kind == Token::Float) {
      ++tok_;
      try {
        return literal(Value(std::stod(t.text)), t.pos);
      } catch (const std::exception&) {
        error_at(t.pos, "float literal out of range");
      }
    }
    if (t.text == "(") {
      ++tok_;
      if (skip_op(")")) {
        auto e = make(Expr::ListLit, t.pos);
        return e;
      }
      ExprPtr first = parse_expression();
      if (skip_op(")")) return first;
      auto e = make(Expr::ListLit, t.pos);  // a tuple; behaves like a list here
      e->args.push_back(std::move(first));
      while (skip_op(",")) {
        if (peek_op(")")) break;
        e->args.push_back(parse_expression());
      }
      if (!skip_op(")")) error_here("expected ')'");
      return seal(std::move(e));
    }
    if (t.text == "[") {
      ++tok_;
      auto e = make(Expr::ListLit, t.pos);
      while (!skip_op("]")) {
        if (!e->args.empty() && !skip_op(",")) error_here("expected ',' or ']'");
        if (skip_op("]")) break;
        e->args.push_back(parse_expression());
      }
      return seal(std::move(e));
    }
    if (t.text == "{") {
      ++tok_;
      auto e = make(Expr::DictLit, t.pos);
      while (!skip_op("}")) {
        if (!e->args.empty() && !skip_op(",")) error_here("expected ',' or '}'");
        if (skip_op("}")) break;
        e->args.push_back(parse_expression());
        if (!skip_op(":")) error_here("expected ':' in dict literal");
        e->args.push_back(parse_expression());
      }
      return seal(std::move(e));
    }
    error_at(t.pos, cat("unexpected '", t.text, "'"));
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (has()) {
      if (peek_op(".")) {
        size_t p = tok().pos;
        ++tok_;
        if (has() && tok().kind == Token::Int) {  // foo.0 is foo[0]
          auto it = make(Expr::Item, p);
          it->a = std::move(e);
          it->b = literal(Value(int_literal(tok())), tok().pos);
          ++tok_;
          e = seal(std::move(it));
          continue;
        }
        auto a = make(Expr::Attr, p);
        a->name = expect_name().text;
        a->a = std::move(e);
        e = seal(std::move(a));
      } else if (peek_op("[")) {
        e = parse_subscript(std::move(e));
      } else if (peek_op("(")) {
        e = parse_call(std::move(e));
      } else {
        break;
      }
    }
    return e;
  }

  ExprPtr parse_subscript(ExprPtr target) {
    size_t p = tok().pos;
    ++tok_;  // [
    ExprPtr start, stop, step;
    bool is_slice = false;
    if (!peek_op(":")) start = parse_expression();
    if (skip_op(":")) {
      is_slice = true;
      if (!peek_op("]") && !peek_op(":")) stop = parse_expression();
      if (skip_op(":") && !peek_op("]")) step = parse_expression();
    }
    if (!skip_op("]")) error_here("expected ']'");
    auto e = make(is_slice ? Expr::Slice : Expr::Item, p);
    e->a = std::move(target);
    e->b = std::move(start);
    e->c = std::move(stop);
    e->d = std::move(step);
    return seal(std::move(e));
  }

  void parse_args(Expr& e) {
    // current token is "("
    ++tok_;
    while (!skip_op(")")) {
      if (!(e.args.empty() && e.kwargs.empty()) && !skip_op(",")) error_here("expected ',' or ')'");
      if (skip_op(")")) break;
      if (has() && tok().kind == Token::Name && tok_ + 1 < toks().size() &&
          toks()[tok_ + 1].kind == Token::Op && toks()[tok_ + 1].text == "=") {
        std::string k = tok().text;
        tok_ += 2;
        e.kwargs.emplace_back(k, parse_expression());
      } else {
        if (!e.kwargs.empty()) error_here("positional argument after keyword argument");
        e.args.push_back(parse_expression());
      }
    }
  }

  ExprPtr parse_call(ExprPtr target) {
    auto e = make(Expr::Call, tok().pos);
    e->a = std::move(target);
    parse_args(*e);
    return seal(std::move(e));
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    while (has()) {
      if (peek_op("|")) {
        auto f = make(Expr::Filter, tok().pos);
        ++tok_;
        f->name = expect_name().text;
        while (skip_op(".")) f->name += "." + expect_name().text;
        if (peek_op("(")) parse_args(*f);
        f->a = std::move(e);
        e = seal(std::move(f));
      } else if (peek_name("is")) {
        auto t = make(Expr::Test, tok().pos);
        ++tok_;
        if (skip_name("not")) t->negated = true;
        t->name = expect_name().text;
        if (peek_op("(")) {
          parse_args(*t);
        } else if (has() && !peek_name("else") && !peek_name("or") && !peek_name("and") &&
                   !peek_name("if") && !peek_name("is") && !peek_name("in") && !peek_name("not") &&
                   (tok().kind != Token::Op || tok().text == "[" || tok().text == "{") ) {
          // `x is divisibleby 3`: one argument without parentheses
          t->args.push_back(parse_postfix(parse_primary()));
        }
        t->a = std::move(e);
        e = seal(std::move(t));
      } else if (peek_op("(")) {
        e = parse_call(std::move(e));
      } else {
        break;
      }
    }
    return e;
  }

  int64_t int_literal(const Token& t) {
    try {
      return int64_t(std::stoll(t.text));
    } catch (const std::exception&) {
      error_at(t.pos, "integer literal out of range");
    }
  }

  // Counts one level of a recursive construct for its lifetime; past `limit` the template is
  // refused before the parser's own recursion can exhaust the stack.
  class Nesting {
   public:
    Nesting(Parser& p, int& depth, int limit, const char* what) : depth_(depth) {
      if (++depth_ > limit) {
        --depth_;
        p.error_at(p.current_pos(), cat(what, " nested deeper than ", limit, " levels"));
      }
    }
    ~Nesting() { --depth_; }
    Nesting(const Nesting&) = delete;
    Nesting& operator=(const Nesting&) = delete;

   private:
    int& depth_;
  };

  // ---- token cursor -----------------------------------------------------------------------
  void begin_segment() { tok_ = 0; }
  const std::vector<Token>& toks() const { return lexed_.segments[seg_].tokens; }
  bool has() const { return tok_ < toks().size(); }
  bool at_end() const { return !has(); }
  const Token& tok() const { return toks()[tok_]; }
  bool peek_op(const char* op) const { return has() && tok().kind == Token::Op && tok().text == op; }
  bool peek_name(const char* n) const { return has() && tok().kind == Token::Name && tok().text == n; }
  bool skip_op(const char* op) {
    if (!peek_op(op)) return false;
    ++tok_;
    return true;
  }
  bool skip_name(const char* n) {
    if (!peek_name(n)) return false;
    ++tok_;
    return true;
  }
  const Token& expect_name() {
    if (!has() || tok().kind != Token::Name) error_here("expected a name");
    return toks()[tok_++];
  }
  void expect_end() {
    if (has()) error_at(tok().pos, cat("unexpected '", tok().text, "' (expected end of tag)"));
    ++seg_;
  }
  // Where the cursor is, also when it has run past the last segment.
  size_t current_pos() const {
    if (seg_ >= lexed_.segments.size()) return lexed_.source.size();
    return has() ? tok().pos : lexed_.segments[seg_].pos;
  }
  [[noreturn]] void error_here(const std::string& what) {
    size_t pos = has() ? tok().pos : lexed_.segments[seg_].pos;
    error_at(pos, what);
  }
  [[noreturn]] void error_at(size_t pos, const std::string& what) {
    fail("chat template ", template_position(lexed_.source, name_, pos), ": ", what);
  }
  static ExprPtr literal(Value v, size_t pos) {
    auto e = make(Expr::Literal, pos);
    e->value = std::move(v);
    return e;
  }
  static std::unique_ptr<Node> node(Node::Kind k, size_t pos) {
    auto n = std::make_unique<Node>();
    n->kind = k;
    n->pos = pos;
    return n;
  }

  const Lexed& lexed_;
  const std::string& name_;
  size_t seg_ = 0, tok_ = 0;
  int statements_ = 0, expressions_ = 0;  // current nesting (see Nesting)
};

}  // namespace

Body parse_template(const Lexed& lexed, const std::string& name) {
  return Parser(lexed, name).parse_all();
}

}  // namespace mf::jinja

// The tree-walking interpreter. Scopes are a stack of dicts (globals, render context, then one per
// loop iteration or macro call), so a `set` inside a loop stays local as in Jinja2; an error is
// wrapped once, with the position of the innermost node or expression that raised it.
#include "chat/jinja/template.h"

#include "core/error.h"
#include "chat/jinja/builtins.h"
#include "chat/jinja/lexer.h"
#include "chat/jinja/limits.h"
#include "chat/jinja/parser.h"

namespace mf::jinja {
namespace {

// An error that already carries its template position (so outer nodes do not re-wrap it).
class PositionedError : public Error {
 public:
  using Error::Error;
};

class Interpreter {
 public:
  Interpreter(const std::string& source, const std::string& name, const Value& context)
      : source_(source), name_(name) {
    scopes_.push_back(Value(make_globals()));
    if (!context.is_dict()) fail("chat template ", name, ": render context must be a dict");
    Dict top = context.as_dict();  // shallow copy: template `set`s never touch the caller's dict
    scopes_.push_back(Value(std::move(top)));
  }

  void run(const Body& body, std::string& out) {
    Flow f = exec_body(body, out);
    (void)f;  // break/continue outside a loop: Jinja2 rejects at parse time; we just stop
  }

 private:
  enum class Flow { Normal, Break, Continue };

  [[noreturn]] void error_at(size_t pos, const std::string& what) const {
    throw PositionedError(cat("chat template ", template_position(source_, name_, pos), ": ", what));
  }

  Value lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it)
      if (const Value* v = it->find(name)) return *v;
    return Value::undefined(name);
  }

  Flow exec_body(const Body& body, std::string& out) {
    for (const auto& n : body) {
      Flow f = exec(*n, out);
      if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
  }

  // One unit of the render's budget: a runaway loop is stopped, not waited for.
  void step() { charge(1); }
  void charge(int64_t units) {
    steps_ += units;
    if (steps_ > kMaxRenderSteps) fail("rendering took more than ", kMaxRenderSteps, " steps");
  }

  static void check_output(const std::string& out) {
    if (out.size() > kMaxOutputBytes) fail("rendered text longer than ", kMaxOutputBytes, " bytes");
  }

  Flow exec(const Node& n, std::string& out) {
    try {
      step();
      return exec_inner(n, out);
    } catch (const PositionedError&) {
      throw;
    } catch (const Error& e) {
      error_at(n.pos, e.what());
    }
  }

  Flow exec_inner(const Node& n, std::string& out) {
    switch (n.kind) {
      case Node::Text:
        out += n.text;
        check_output(out);
        return Flow::Normal;
      case Node::Output:
        out += eval(*n.expr).str();
        check_output(out);
        return Flow::Normal;
      case Node::If:
        for (const auto& [cond, body] : n.branches)
          if (!cond || eval(*cond).truthy()) return exec_body(body, out);
        return Flow::Normal;
      case Node::For: return exec_for(n, out);
      case Node::Set: {
        Value v = eval(*n.expr);
        if (!n.attr.empty()) {
          Value target = lookup(n.targets[0]);
          if (!target.is_dict()) error_at(n.pos, cat("cannot set attribute on '", n.targets[0], "' (not a namespace)"));
          target.set(n.attr, v);
        } else if (n.targets.size() == 1) {
          scopes_.back().set(n.targets[0], v);
        } else {
          auto items = iterate(v);
          if (items.size() != n.targets.size()) error_at(n.pos, "wrong number of values to unpack in set");
          for (size_t i = 0; i < items.size(); ++i) scopes_.back().set(n.targets[i], items[i]);
        }
        return Flow::Normal;
      }
      case Node::SetBlock: {
        std::string captured;
        exec_body(n.body, captured);
        scopes_.back().set(n.targets[0], Value(captured));
        return Flow::Normal;
      }
      case Node::Macro: scopes_.back().set(n.targets[0], make_macro(n)); return Flow::Normal;
      case Node::Break: return Flow::Break;
      case Node::Continue: return Flow::Continue;
      case Node::Block: return exec_body(n.body, out);
    }
    return Flow::Normal;
  }

  Flow exec_for(const Node& n, std::string& out) {
    std::vector<Value> items = iterate(eval(*n.expr));
    if (n.filter) {  // `for x in xs if cond`: loop.* counts only the kept items
      std::vector<Value> kept;
      for (const auto& item : items) {
        scopes_.push_back(Value(Dict{}));
        bind_targets(n, item);
        bool keep = eval(*n.filter).truthy();
        scopes_.pop_back();
        if (keep) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) return exec_body(n.else_body, out);
    const int64_t len = int64_t(items.size());
    for (int64_t i = 0; i < len; ++i) {
      step();  // an empty body still costs its iterations
      Dict loop = {
          {"index", Value(i + 1)}, {"index0", Value(i)}, {"revindex", Value(len - i)},
          {"revindex0", Value(len - i - 1)}, {"first", Value(i == 0)}, {"last", Value(i == len - 1)},
          {"length", Value(len)},
          {"previtem", i > 0 ? items[size_t(i - 1)] : Value::undefined("previtem")},
          {"nextitem", i + 1 < len ? items[size_t(i + 1)] : Value::undefined("nextitem")},
      };
      loop.emplace_back("cycle", Value(Function([i](const CallArgs& a) {
                          if (a.positional.empty()) fail("loop.cycle needs arguments");
                          return a.positional[size_t(i) % a.positional.size()];
                        })));
      scopes_.push_back(Value(Dict{{"loop", Value(std::move(loop))}}));
      bind_targets(n, items[size_t(i)]);
      Flow f = exec_body(n.body, out);
      scopes_.pop_back();
      if (f == Flow::Break) break;
    }
    return Flow::Normal;
  }

  void bind_targets(const Node& n, const Value& item) {
    if (n.targets.size() == 1) {
      scopes_.back().set(n.targets[0], item);
      return;
    }
    auto parts = iterate(item);
    if (parts.size() != n.targets.size())
      error_at(n.pos, cat("cannot unpack ", parts.size(), " values into ", n.targets.size(), " loop variables"));
    for (size_t i = 0; i < parts.size(); ++i) scopes_.back().set(n.targets[i], parts[i]);
  }

  Value make_macro(const Node& n) {
    const Node* node = &n;
    return Value(Function([this, node](const CallArgs& a) {
      if (depth_ >= kMaxMacroDepth) fail("macro calls nested deeper than ", kMaxMacroDepth, " levels");
      Dict locals;
      for (size_t i = 0; i < node->params.size(); ++i) {
        const auto& [pname, def] = node->params[i];
        auto v = a.get(i, pname);
        locals.emplace_back(pname, v ? *v : def ? eval(*def) : Value::undefined(pname));
      }
      if (a.positional.size() > node->params.size()) fail("macro '", node->targets[0], "' got too many arguments");
      // A macro sees the globals and the render context, plus its own arguments.
      std::vector<Value> saved(scopes_.begin() + 2, scopes_.end());
      scopes_.resize(2);
      scopes_.push_back(Value(std::move(locals)));
      std::string out;
      ++depth_;
      try {
        exec_body(node->body, out);
      } catch (...) {
        --depth_;
        scopes_.resize(2);
        scopes_.insert(scopes_.end(), saved.begin(), saved.end());
        throw;
      }
      --depth_;
      scopes_.resize(2);
      scopes_.insert(scopes_.end(), saved.begin(), saved.end());
      return Value(out);
    }));
  }

  CallArgs eval_args(const Expr& e) {
    CallArgs a;
    for (const auto& x : e.args) a.positional.push_back(eval(*x));
    for (const auto& [k, x] : e.kwargs) a.keyword.emplace_back(k, eval(*x));
    return a;
  }

  Value eval(const Expr& e) {
    try {
      step();
      Value v = eval_inner(e);
      // Long strings and lists cost their size too (a KiB or 64 items a step): the budget bounds
      // time even when each step copies megabytes.
      // Every value, whatever made it (filters, methods, tojson of tojson...), stays in bounds.
      if (v.is_string()) {
        if (v.as_string().size() > kMaxValueBytes) fail("string longer than ", kMaxValueBytes, " bytes");
        charge(v.as_string().size() >> 10);
      } else if (v.is_list()) {
        if (v.as_list().size() > kMaxListItems) fail("list longer than ", kMaxListItems, " items");
        charge(v.as_list().size() >> 6);
      }
      return v;
    } catch (const PositionedError&) {
      throw;
    } catch (const Error& err) {
      error_at(e.pos, err.what());
    }
  }

  Value eval_inner(const Expr& e) {
    switch (e.kind) {
      case Expr::Literal: return e.value;
      case Expr::Name: return lookup(e.name);
      case Expr::Attr: return get_attribute(eval(*e.a), e.name);
      case Expr::Item: return get_item(eval(*e.a), eval(*e.b));
      case Expr::Slice:
        return slice_value(eval(*e.a), e.b ? eval(*e.b) : Value(None{}), e.c ? eval(*e.c) : Value(None{}),
                           e.d ? eval(*e.d) : Value(None{}));
      case Expr::Call: {
        Value f = eval(*e.a);
        if (f.is_undefined()) fail("'", f.undefined_name(), "' is undefined (cannot call it)");
        if (!f.is_callable()) fail("'", f.type_name(), "' object is not callable");
        return f.as_function()(eval_args(e));
      }
      case Expr::Filter: {
        Value v = eval(*e.a);
        return apply_filter(e.name, v, eval_args(e));
      }
      case Expr::Test: {
        Value v = eval(*e.a);
        bool r = apply_test(e.name, v, eval_args(e));
        return Value(e.negated ? !r : r);
      }
      case Expr::Unary: {
        Value v = eval(*e.a);
        if (e.name == "not") return Value(!v.truthy());
        if (v.is_undefined()) fail("'", v.undefined_name(), "' is undefined");
        if (!v.is_number()) fail("bad operand type for unary ", e.name, ": '", v.type_name(), "'");
        if (e.name == "+") return v.is_float() ? v : Value(v.as_int());
        return v.is_float() ? Value(-v.as_double()) : Value(-v.as_int());
      }
      case Expr::Binary: {
        Value a = eval(*e.a);
        if (e.name == "and") return a.truthy() ? eval(*e.b) : a;
        if (e.name == "or") return a.truthy() ? a : eval(*e.b);
        return binary_op(e.name, a, eval(*e.b));
      }
      case Expr::Compare: {
        Value left = eval(*e.args[0]);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value right = eval(*e.args[i + 1]);
          const std::string& op = e.ops[i];
          bool r;
          if (op == "==") r = values_equal(left, right);
          else if (op == "!=") r = !values_equal(left, right);
          else if (op == "<") r = value_less(left, right);
          else if (op == ">") r = value_less(right, left);
          else if (op == "<=") r = !value_less(right, left);
          else if (op == ">=") r = !value_less(left, right);
          else if (op == "in") r = contains(right, left);
          else r = !contains(right, left);
          if (!r) return Value(false);
          left = std::move(right);
        }
        return Value(true);
      }
      case Expr::Cond:
        if (eval(*e.b).truthy()) return eval(*e.a);
        return e.c ? eval(*e.c) : Value::undefined("");
      case Expr::ListLit: {
        List l;
        for (const auto& x : e.args) l.push_back(eval(*x));
        return Value(std::move(l));
      }
      case Expr::DictLit: {
        Value d{Dict{}};
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          Value k = eval(*e.args[i]);
          if (!k.is_string()) fail("dict literal keys must be strings here, got ", k.type_name());
          d.set(k.as_string(), eval(*e.args[i + 1]));
        }
        return d;
      }
    }
    fail("unreachable expression kind");
  }

  const std::string& source_;
  const std::string& name_;
  std::vector<Value> scopes_;  // each a dict; [0] globals, [1] render context
  int depth_ = 0;       // macro calls in progress
  int64_t steps_ = 0;   // statements and expressions evaluated so far
};

}  // namespace

Template::Template(std::string source, std::string name) : source_(std::move(source)), name_(std::move(name)) {
  Lexed lexed = lex_template(source_, name_);
  normalised_ = lexed.source;
  body_ = std::make_shared<const Body>(parse_template(lexed, name_));
}

std::string Template::render(const Value& context) const {
  std::string out;
  Interpreter(normalised_, name_, context).run(*body_, out);
  return out;
}

}  // namespace mf::jinja

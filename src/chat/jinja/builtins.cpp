// Filters, tests, methods and operators, behaving as CPython's where a template can tell: floor
// division and modulo round toward -inf, negative indices and slices count from the end, split()
// with no separator drops empty strings. Case mapping alone is ASCII only. Unknown names fail.
#include "chat/jinja/builtins.h"

#include <algorithm>
#include <charconv>
#include <climits>
#include <cmath>
#include <ctime>

#include "chat/jinja/limits.h"
#include "core/error.h"

namespace mf::jinja {

std::vector<std::string> utf8_chars(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    n = std::min(n, s.size() - i);
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

namespace {

const char* const kWhitespace = " \t\n\r\f\v";

[[noreturn]] void undefined_error(const Value& v) {
  fail("'", v.undefined_name().empty() ? "value" : v.undefined_name(), "' is undefined");
}

const std::string& need_string(const Value& v, const char* what) {
  if (v.is_undefined()) undefined_error(v);
  if (!v.is_string()) fail(what, " expects a string, got ", v.type_name());
  return v.as_string();
}

std::string strip_chars(const std::string& s, const std::string& chars, bool left, bool right) {
  size_t b = 0, e = s.size();
  if (left) b = s.find_first_not_of(chars);
  if (b == std::string::npos) return "";
  if (right) e = s.find_last_not_of(chars) + 1;
  return s.substr(b, e - b);
}

std::string ascii_map(std::string s, int (*f)(int)) {
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x80) c = char(f(c));
  return s;
}

std::string capitalize(const std::string& s) {
  std::string out = ascii_map(s, [](int c) { return std::tolower(c); });
  if (!out.empty() && static_cast<unsigned char>(out[0]) < 0x80) out[0] = char(std::toupper(out[0]));
  return out;
}

std::string title(const std::string& s) {
  std::string out = s;
  bool prev_alpha = false;
  for (char& c : out) {
    bool alpha = static_cast<unsigned char>(c) < 0x80 && std::isalpha(static_cast<unsigned char>(c));
    if (alpha) c = char(prev_alpha ? std::tolower(c) : std::toupper(c));
    prev_alpha = alpha || static_cast<unsigned char>(c) >= 0x80;
  }
  return out;
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  std::string out;
  if (from.empty()) {  // Python inserts `to` between characters
    auto chars = utf8_chars(s);
    int64_t n = 0;
    for (const auto& c : chars) {
      if (count < 0 || n < count) { out += to; ++n; }
      out += c;
    }
    if (count < 0 || n < count) out += to;
    return out;
  }
  size_t pos = 0;
  int64_t n = 0;
  while (count < 0 || n < count) {
    size_t f = s.find(from, pos);
    if (f == std::string::npos) break;
    out += s.substr(pos, f - pos) + to;
    pos = f + from.size();
    ++n;
  }
  return out + s.substr(pos);
}

Value split(const std::string& s, const std::optional<Value>& sep, int64_t maxsplit) {
  List out;
  if (!sep || sep->is_none()) {  // runs of whitespace, no empty strings
    size_t i = 0;
    while (true) {
      i = s.find_first_not_of(kWhitespace, i);
      if (i == std::string::npos) break;
      if (maxsplit >= 0 && int64_t(out.size()) == maxsplit) {
        out.push_back(Value(strip_chars(s.substr(i), kWhitespace, false, true)));
        break;
      }
      size_t e = s.find_first_of(kWhitespace, i);
      out.push_back(Value(s.substr(i, e == std::string::npos ? std::string::npos : e - i)));
      if (e == std::string::npos) break;
      i = e;
    }
    return Value(std::move(out));
  }
  const std::string& d = need_string(*sep, "split");
  if (d.empty()) fail("split: empty separator");
  size_t pos = 0;
  while (maxsplit < 0 || int64_t(out.size()) < maxsplit) {
    size_t f = s.find(d, pos);
    if (f == std::string::npos) break;
    out.push_back(Value(s.substr(pos, f - pos)));
    pos = f + d.size();
  }
  out.push_back(Value(s.substr(pos)));
  return Value(std::move(out));
}

bool prefix_test(const std::string& s, const Value& arg, bool start) {
  auto one = [&](const Value& p) {
    const std::string& x = need_string(p, start ? "startswith" : "endswith");
    if (x.size() > s.size()) return false;
    return start ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  if (arg.is_list()) {
    for (const auto& p : arg.as_list())
      if (one(p)) return true;
    return false;
  }
  return one(arg);
}

Value method(Value self, Value (*fn)(const Value&, const CallArgs&)) {
  return Value(Function([self, fn](const CallArgs& a) { return fn(self, a); }));
}

int64_t int_arg(const CallArgs& a, size_t i, const std::string& name, int64_t def) {
  auto v = a.get(i, name);
  if (!v || v->is_none()) return def;
  return v->as_int();
}

Value string_method(const Value& self, const std::string& name) {
  using F = Value (*)(const Value&, const CallArgs&);
  static const std::vector<std::pair<std::string, F>> methods = {
      {"strip", [](const Value& s, const CallArgs& a) {
         auto c = a.get(0, "chars");
         return Value(strip_chars(s.as_string(), c && !c->is_none() ? need_string(*c, "strip") : kWhitespace, true, true));
       }},
      {"lstrip", [](const Value& s, const CallArgs& a) {
         auto c = a.get(0, "chars");
         return Value(strip_chars(s.as_string(), c && !c->is_none() ? need_string(*c, "lstrip") : kWhitespace, true, false));
       }},
      {"rstrip", [](const Value& s, const CallArgs& a) {
         auto c = a.get(0, "chars");
         return Value(strip_chars(s.as_string(), c && !c->is_none() ? need_string(*c, "rstrip") : kWhitespace, false, true));
       }},
      {"startswith", [](const Value& s, const CallArgs& a) {
         auto p = a.get(0, "prefix");
         if (!p) fail("startswith needs an argument");
         return Value(prefix_test(s.as_string(), *p, true));
       }},
      {"endswith", [](const Value& s, const CallArgs& a) {
         auto p = a.get(0, "suffix");
         if (!p) fail("endswith needs an argument");
         return Value(prefix_test(s.as_string(), *p, false));
       }},
      {"split", [](const Value& s, const CallArgs& a) {
         return split(s.as_string(), a.get(0, "sep"), int_arg(a, 1, "maxsplit", -1));
       }},
      {"upper", [](const Value& s, const CallArgs&) { return Value(ascii_map(s.as_string(), [](int c) { return std::toupper(c); })); }},
      {"lower", [](const Value& s, const CallArgs&) { return Value(ascii_map(s.as_string(), [](int c) { return std::tolower(c); })); }},
      {"title", [](const Value& s, const CallArgs&) { return Value(title(s.as_string())); }},
      {"capitalize", [](const Value& s, const CallArgs&) { return Value(capitalize(s.as_string())); }},
      {"replace", [](const Value& s, const CallArgs& a) {
         auto from = a.get(0, "old"), to = a.get(1, "new");
         if (!from || !to) fail("replace needs two arguments");
         return Value(replace_all(s.as_string(), need_string(*from, "replace"), need_string(*to, "replace"),
                                  int_arg(a, 2, "count", -1)));
       }},
      {"find", [](const Value& s, const CallArgs& a) {
         auto x = a.get(0, "sub");
         if (!x) fail("find needs an argument");
         size_t f = s.as_string().find(need_string(*x, "find"));
         if (f == std::string::npos) return Value(int64_t(-1));
         return Value(int64_t(utf8_chars(s.as_string().substr(0, f)).size()));
       }},
      {"count", [](const Value& s, const CallArgs& a) {
         auto x = a.get(0, "sub");
         if (!x) fail("count needs an argument");
         const std::string& sub = need_string(*x, "count");
         if (sub.empty()) return Value(int64_t(utf8_chars(s.as_string()).size() + 1));
         int64_t n = 0;
         for (size_t p = s.as_string().find(sub); p != std::string::npos; p = s.as_string().find(sub, p + sub.size())) ++n;
         return Value(n);
       }},
      {"join", [](const Value& s, const CallArgs& a) {
         auto x = a.get(0, "iterable");
         if (!x) fail("join needs an argument");
         std::string out;
         bool first = true;
         for (const auto& v : iterate(*x)) {
           if (!first) out += s.as_string();
           out += need_string(v, "join");
           first = false;
         }
         return Value(out);
       }},
  };
  for (const auto& [n, f] : methods)
    if (n == name) return method(self, f);
  return Value::undefined(name);
}

Value dict_method(const Value& self, const std::string& name) {
  if (name == "items")
    return method(self, [](const Value& d, const CallArgs&) {
      List out;
      for (const auto& [k, v] : d.as_dict()) out.push_back(Value(List{Value(k), v}));
      return Value(std::move(out));
    });
  if (name == "keys")
    return method(self, [](const Value& d, const CallArgs&) {
      List out;
      for (const auto& kv : d.as_dict()) out.push_back(Value(kv.first));
      return Value(std::move(out));
    });
  if (name == "values")
    return method(self, [](const Value& d, const CallArgs&) {
      List out;
      for (const auto& kv : d.as_dict()) out.push_back(kv.second);
      return Value(std::move(out));
    });
  if (name == "get")
    return method(self, [](const Value& d, const CallArgs& a) {
      auto k = a.get(0, "key");
      if (!k) fail("get needs a key");
      if (k->is_string())
        if (const Value* v = d.find(k->as_string())) return *v;
      auto def = a.get(1, "default");
      return def ? *def : Value(None{});
    });
  return Value();
}

int64_t py_index(int64_t i, int64_t n) { return i < 0 ? i + n : i; }

Value pick_attribute(const Value& item, const std::string& attr) {
  Value v = item;
  size_t pos = 0;
  while (true) {  // "a.b" walks nested attributes, as Jinja2's attribute= does
    size_t dot = attr.find('.', pos);
    std::string part = attr.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
    if (numeric) {
      int64_t index = 0;
      const auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), index);
      if (ec != std::errc() || end != part.data() + part.size()) fail("attribute index '", part, "' is out of range");
      v = get_item(v, Value(index));
    } else {
      v = get_attribute(v, part);
    }
    if (dot == std::string::npos) return v;
    pos = dot + 1;
  }
}

CallArgs tail_args(const CallArgs& a, size_t from) {
  CallArgs out;
  for (size_t i = from; i < a.positional.size(); ++i) out.positional.push_back(a.positional[i]);
  return out;
}

Value select_like(const Value& v, const CallArgs& a, bool by_attr, bool keep) {
  List out;
  size_t first = by_attr ? 1 : 0;
  std::string attr;
  if (by_attr) {
    auto at = a.get(0, "attribute");
    if (!at) fail("selectattr/rejectattr need an attribute name");
    attr = need_string(*at, "selectattr");
  }
  auto test = a.get(first, "test");
  CallArgs targs = tail_args(a, first + 1);
  for (const auto& item : iterate(v)) {
    Value x = by_attr ? pick_attribute(item, attr) : item;
    bool r = test ? apply_test(need_string(*test, "select"), x, targs) : x.truthy();
    if (r == keep) out.push_back(item);
  }
  return Value(std::move(out));
}

}  // namespace

std::vector<Value> iterate(const Value& v) {
  if (v.is_undefined()) return {};
  if (v.is_list()) return v.as_list();
  if (v.is_dict()) {
    std::vector<Value> keys;
    for (const auto& kv : v.as_dict()) keys.push_back(Value(kv.first));
    return keys;
  }
  if (v.is_string()) {
    // One Value per character: bounded before it is built (a join of a join of ... doubles).
    if (v.as_string().size() > kMaxIteratedChars)
      fail("iterating a string of ", v.as_string().size(), " bytes (at most ", kMaxIteratedChars, ")");
    std::vector<Value> out;
    for (auto& c : utf8_chars(v.as_string())) out.push_back(Value(c));
    return out;
  }
  fail("'", v.type_name(), "' object is not iterable");
}

bool contains(const Value& container, const Value& item) {
  if (container.is_string()) {
    if (!item.is_string()) fail("'in <string>' requires a string on the left, got ", item.type_name());
    return container.as_string().find(item.as_string()) != std::string::npos;
  }
  if (container.is_dict()) return item.is_string() && container.find(item.as_string()) != nullptr;
  for (const auto& x : iterate(container))
    if (values_equal(x, item)) return true;
  return false;
}

Value get_attribute(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) undefined_error(obj);
  if (obj.is_dict()) {
    Value m = dict_method(obj, name);
    if (!m.is_undefined()) return m;
    if (const Value* v = obj.find(name)) return *v;
    return Value::undefined(name);
  }
  if (obj.is_string()) return string_method(obj, name);
  return Value::undefined(name);
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) undefined_error(obj);
  if (obj.is_dict()) {
    if (key.is_string())
      if (const Value* v = obj.find(key.as_string())) return *v;
    return Value::undefined(key.is_string() ? key.as_string() : key.repr());
  }
  if ((obj.is_list() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    if (obj.is_list()) {
      const auto& l = obj.as_list();
      int64_t i = py_index(key.as_int(), int64_t(l.size()));
      if (i < 0 || i >= int64_t(l.size())) return Value::undefined(cat("[", key.as_int(), "]"));
      return l[size_t(i)];
    }
    auto chars = utf8_chars(obj.as_string());
    int64_t i = py_index(key.as_int(), int64_t(chars.size()));
    if (i < 0 || i >= int64_t(chars.size())) return Value::undefined(cat("[", key.as_int(), "]"));
    return Value(chars[size_t(i)]);
  }
  if (key.is_string()) return get_attribute(obj, key.as_string());
  return Value::undefined(key.repr());
}

Value slice_value(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  std::vector<Value> items;
  bool is_str = obj.is_string();
  if (is_str || obj.is_list()) items = iterate(obj);
  else if (obj.is_undefined()) undefined_error(obj);
  else fail("cannot slice a ", obj.type_name());
  int64_t n = int64_t(items.size());
  int64_t st = step.is_undefined() || step.is_none() ? 1 : step.as_int();
  if (st == 0) fail("slice step cannot be zero");
  auto clamp = [&](const Value& v, int64_t def) {
    if (v.is_undefined() || v.is_none()) return def;
    int64_t i = v.as_int();
    if (i < 0) i += n;
    if (st > 0) return std::clamp<int64_t>(i, 0, n);
    return std::clamp<int64_t>(i, -1, n - 1);
  };
  int64_t b = clamp(start, st > 0 ? 0 : n - 1), e = clamp(stop, st > 0 ? n : -1);
  List out;
  for (int64_t i = b; st > 0 ? i < e : i > e; i += st) out.push_back(items[size_t(i)]);
  if (!is_str) return Value(std::move(out));
  std::string s;
  for (const auto& c : out) s += c.as_string();
  return Value(s);
}

Value binary_op(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") {
    std::string s = a.str();
    const std::string t = b.str();
    if (s.size() + t.size() > kMaxValueBytes) fail("string longer than ", kMaxValueBytes, " bytes");
    return Value(s + t);
  }
  if (a.is_undefined()) undefined_error(a);
  if (b.is_undefined()) undefined_error(b);
  auto type_error = [&]() -> Value {
    fail("unsupported operand types for ", op, ": '", a.type_name(), "' and '", b.type_name(), "'");
  };
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      if (a.as_string().size() + b.as_string().size() > kMaxValueBytes)
        fail("string longer than ", kMaxValueBytes, " bytes");
      return Value(a.as_string() + b.as_string());
    }
    if (a.is_list() && b.is_list()) {
      if (a.as_list().size() + b.as_list().size() > kMaxListItems) fail("list longer than ", kMaxListItems, " items");
      List l = a.as_list();
      l.insert(l.end(), b.as_list().begin(), b.as_list().end());
      return Value(std::move(l));
    }
  }
  if (op == "*" && ((a.is_string() || a.is_list()) && (b.is_int() || b.is_bool()))) {
    // The size is checked before the loop: "x" * 10**12 is refused, not attempted.
    const int64_t n = std::max<int64_t>(b.as_int(), 0);
    const size_t unit = a.is_string() ? a.as_string().size() : a.as_list().size();
    const size_t cap = a.is_string() ? kMaxValueBytes : kMaxListItems;
    if (unit > 0 && uint64_t(n) > cap / unit) fail("repetition result larger than ", cap, a.is_string() ? " bytes" : " items");
    if (a.is_string()) {
      std::string s;
      for (int64_t i = 0; i < b.as_int(); ++i) s += a.as_string();
      return Value(s);
    }
    List l;
    for (int64_t i = 0; i < b.as_int(); ++i) l.insert(l.end(), a.as_list().begin(), a.as_list().end());
    return Value(std::move(l));
  }
  if (!a.is_number() || !b.is_number()) return type_error();
  bool floats = a.is_float() || b.is_float();
  if (op == "/") {
    if (b.as_double() == 0) fail("division by zero");
    return Value(a.as_double() / b.as_double());
  }
  if (floats) {
    double x = a.as_double(), y = b.as_double();
    if (op == "+") return Value(x + y);
    if (op == "-") return Value(x - y);
    if (op == "*") return Value(x * y);
    if (op == "**") return Value(std::pow(x, y));
    if (y == 0) fail("float division by zero");
    if (op == "//") return Value(std::floor(x / y));
    if (op == "%") return Value(x - std::floor(x / y) * y);
  } else {
    // Python's integers do not overflow; these are 64-bit, so an overflow is refused.
    const int64_t x = a.as_int(), y = b.as_int();
    int64_t r = 0;
    auto overflow = [&]() -> Value { fail("integer overflow in ", x, " ", op, " ", y); };
    if (op == "+") return __builtin_add_overflow(x, y, &r) ? overflow() : Value(r);
    if (op == "-") return __builtin_sub_overflow(x, y, &r) ? overflow() : Value(r);
    if (op == "*") return __builtin_mul_overflow(x, y, &r) ? overflow() : Value(r);
    if (op == "**") {
      if (y < 0) return Value(std::pow(double(x), double(y)));
      // Square-and-multiply: at most 63 squarings whatever y, each checked.
      int64_t result = 1, base = x;
      for (int64_t e = y; e > 0; e >>= 1) {
        if ((e & 1) && __builtin_mul_overflow(result, base, &result)) return overflow();
        if (e > 1 && __builtin_mul_overflow(base, base, &base)) return overflow();
      }
      return Value(result);
    }
    if (y == 0) fail("integer division or modulo by zero");
    if (x == INT64_MIN && y == -1) {  // the one quotient that does not fit (and traps in hardware)
      if (op == "%") return Value(int64_t(0));
      return overflow();
    }
    int64_t q = x / y;
    r = x % y;
    if (r != 0 && ((r < 0) != (y < 0))) {  // Python floors toward -inf
      --q;
      r += y;
    }
    if (op == "//") return Value(q);
    if (op == "%") return Value(r);
  }
  return type_error();
}

bool apply_test(const std::string& name, const Value& v, const CallArgs& a) {
  auto arg = [&]() {
    auto x = a.get(0, "value");
    if (!x) fail("test '", name, "' needs an argument");
    return *x;
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_int() || v.is_float();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "mapping") return v.is_dict();
  if (name == "sequence") return v.is_list() || v.is_string() || v.is_dict();
  if (name == "iterable") return v.is_list() || v.is_string() || v.is_dict();
  if (name == "callable") return v.is_callable();
  if (name == "odd") return v.as_int() % 2 != 0;
  if (name == "even") return v.as_int() % 2 == 0;
  if (name == "divisibleby") return v.as_int() % arg().as_int() == 0;
  if (name == "eq" || name == "equalto" || name == "==") return values_equal(v, arg());
  if (name == "ne" || name == "!=") return !values_equal(v, arg());
  if (name == "lt" || name == "lessthan" || name == "<") return value_less(v, arg());
  if (name == "gt" || name == "greaterthan" || name == ">") return value_less(arg(), v);
  if (name == "le" || name == "<=") return !value_less(arg(), v);
  if (name == "ge" || name == ">=") return !value_less(v, arg());
  if (name == "in") return contains(arg(), v);
  if (name == "lower") return v.is_string() && v.as_string() == ascii_map(v.as_string(), [](int c) { return std::tolower(c); });
  if (name == "upper") return v.is_string() && v.as_string() == ascii_map(v.as_string(), [](int c) { return std::toupper(c); });
  fail("unknown test '", name, "'");
}

Value apply_filter(const std::string& name, const Value& v, const CallArgs& a) {
  auto str_of = [&](const char* what) -> const std::string& { return need_string(v, what); };
  if (name == "trim") {
    auto c = a.get(0, "chars");
    return Value(strip_chars(str_of("trim"), c && !c->is_none() ? need_string(*c, "trim") : kWhitespace, true, true));
  }
  if (name == "length" || name == "count") {
    if (v.is_undefined()) return Value(int64_t(0));
    if (v.is_string()) return Value(int64_t(utf8_chars(v.as_string()).size()));
    if (v.is_list()) return Value(int64_t(v.as_list().size()));
    if (v.is_dict()) return Value(int64_t(v.as_dict().size()));
    fail("object of type '", v.type_name(), "' has no len()");
  }
  if (name == "upper") return Value(ascii_map(v.str(), [](int c) { return std::toupper(c); }));
  if (name == "lower") return Value(ascii_map(v.str(), [](int c) { return std::tolower(c); }));
  if (name == "capitalize") return Value(capitalize(v.str()));
  if (name == "title") return Value(title(v.str()));
  if (name == "string") return Value(v.str());
  if (name == "safe") return v;
  if (name == "tojson") {
    // transformers' signature: tojson(ensure_ascii, indent, separators, sort_keys)
    auto ind = a.get(1, "indent");
    auto sk = a.get(3, "sort_keys");
    int64_t indent = ind && !ind->is_none() ? ind->as_int() : -1;
    if (indent > kMaxIndent) fail("tojson indent ", indent, " is above ", kMaxIndent);
    return Value(v.to_json(int(std::max<int64_t>(indent, -1)), sk && sk->truthy()));
  }
  if (name == "default" || name == "d") {
    auto def = a.get(0, "default_value");
    auto boolean = a.get(1, "boolean");
    bool use_default = v.is_undefined() || (boolean && boolean->truthy() && !v.truthy());
    return use_default ? (def ? *def : Value("")) : v;
  }
  if (name == "first" || name == "last") {
    auto items = iterate(v);
    if (items.empty()) return Value::undefined(name);
    return name == "first" ? items.front() : items.back();
  }
  if (name == "join") {
    auto sep = a.get(0, "d");
    auto attr = a.get(1, "attribute");
    std::string out;
    bool first = true;
    for (const auto& x : iterate(v)) {
      if (!first) out += sep ? sep->str() : "";
      out += (attr ? pick_attribute(x, need_string(*attr, "join")) : x).str();
      first = false;
    }
    return Value(out);
  }
  if (name == "replace") {
    auto from = a.get(0, "old"), to = a.get(1, "new");
    if (!from || !to) fail("replace needs two arguments");
    return Value(replace_all(v.str(), from->str(), to->str(), int_arg(a, 2, "count", -1)));
  }
  if (name == "int") {
    if (v.is_number()) return Value(v.as_int());
    if (v.is_string()) {
      try {
        return Value(int64_t(std::stoll(v.as_string())));
      } catch (const std::exception&) {
      }
    }
    auto def = a.get(0, "default");
    return def ? *def : Value(int64_t(0));
  }
  if (name == "float") {
    if (v.is_number()) return Value(v.as_double());
    if (v.is_string()) {
      try {
        return Value(std::stod(v.as_string()));
      } catch (const std::exception&) {
      }
    }
    auto def = a.get(0, "default");
    return def ? *def : Value(0.0);
  }
  if (name == "abs") {
    if (v.is_float()) return Value(std::fabs(v.as_double()));
    if (v.as_int() == INT64_MIN) fail("integer overflow in abs(", v.as_int(), ")");
    return Value(std::abs(v.as_int()));
  }
  if (name == "list") return Value(List(iterate(v)));
  if (name == "reverse") {
    if (v.is_string()) {
      auto c = utf8_chars(v.as_string());
      std::string out;
      for (auto it = c.rbegin(); it != c.rend(); ++it) out += *it;
      return Value(out);
    }
    auto items = iterate(v);
    std::reverse(items.begin(), items.end());
    return Value(List(std::move(items)));
  }
  if (name == "items") {
    if (v.is_undefined()) return Value(List{});
    if (!v.is_dict()) fail("items expects a mapping, got ", v.type_name());
    List out;
    for (const auto& [k, x] : v.as_dict()) out.push_back(Value(List{Value(k), x}));
    return Value(std::move(out));
  }
  if (name == "map") {
    List out;
    auto attr = a.get(99, "attribute");
    for (const auto& x : iterate(v)) {
      if (attr) {
        Value r = pick_attribute(x, need_string(*attr, "map"));
        if (r.is_undefined()) {
          auto def = a.get(99, "default");
          if (def) r = *def;
        }
        out.push_back(r);
      } else {
        if (a.positional.empty()) fail("map needs a filter name or attribute=");
        out.push_back(apply_filter(need_string(a.positional[0], "map"), x, tail_args(a, 1)));
      }
    }
    return Value(std::move(out));
  }
  if (name == "select") return select_like(v, a, false, true);
  if (name == "reject") return select_like(v, a, false, false);
  if (name == "selectattr") return select_like(v, a, true, true);
  if (name == "rejectattr") return select_like(v, a, true, false);
  if (name == "unique") {
    List out;
    for (const auto& x : iterate(v)) {
      bool seen = false;
      for (const auto& y : out) seen = seen || values_equal(x, y);
      if (!seen) out.push_back(x);
    }
    return Value(std::move(out));
  }
  if (name == "sort") {
    auto items = iterate(v);
    auto rev = a.get(0, "reverse");
    auto attr = a.get(2, "attribute");
    auto key = [&](const Value& x) { return attr ? pick_attribute(x, need_string(*attr, "sort")) : x; };
    std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) { return value_less(key(x), key(y)); });
    if (rev && rev->truthy()) std::reverse(items.begin(), items.end());
    return Value(List(std::move(items)));
  }
  if (name == "indent") {
    int64_t width = int_arg(a, 0, "width", 4);
    if (width > kMaxIndent) fail("indent width ", width, " is above ", kMaxIndent);
    auto first = a.get(1, "first");
    auto blank = a.get(2, "blank");
    std::string pad(size_t(std::max<int64_t>(width, 0)), ' ');
    std::string s = v.str(), out;
    size_t pos = 0;
    bool first_line = true;
    while (true) {
      size_t nl = s.find('\n', pos);
      std::string line = s.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
      bool indent = first_line ? (first && first->truthy()) : (!line.empty() || (blank && blank->truthy()));
      if (indent && !line.empty()) out += pad;
      else if (indent && blank && blank->truthy()) out += pad;
      out += line;
      if (nl == std::string::npos) break;
      out += '\n';
      pos = nl + 1;
      first_line = false;
    }
    return Value(out);
  }
  fail("unknown filter '", name, "'");
}

Dict make_globals() {
  Dict g;
  g.emplace_back("range", Value(Function([](const CallArgs& a) {
    int64_t start = 0, stop, step = 1;
    if (a.positional.size() == 1) {
      stop = a.positional[0].as_int();
    } else if (a.positional.size() >= 2) {
      start = a.positional[0].as_int();
      stop = a.positional[1].as_int();
      if (a.positional.size() > 2) step = a.positional[2].as_int();
    } else {
      fail("range expects 1 to 3 arguments");
    }
    if (step == 0) fail("range step cannot be zero");
    List out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      out.push_back(Value(i));
      if (out.size() > kMaxListItems) fail("range longer than ", kMaxListItems, " items");
    }
    return Value(std::move(out));
  })));
  auto make_dict = [](const CallArgs& a) {
    Dict d;
    if (!a.positional.empty() && a.positional[0].is_dict()) d = a.positional[0].as_dict();
    Value out(std::move(d));
    for (const auto& [k, v] : a.keyword) out.set(k, v);
    return out;
  };
  g.emplace_back("namespace", Value(Function(make_dict)));
  g.emplace_back("dict", Value(Function(make_dict)));
  g.emplace_back("raise_exception", Value(Function([](const CallArgs& a) -> Value {
    fail("template raised an exception: ", a.positional.empty() ? std::string() : a.positional[0].str());
  })));
  g.emplace_back("strftime_now", Value(Function([](const CallArgs& a) {
    std::string fmt = a.positional.empty() ? "%Y-%m-%d" : a.positional[0].str();
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    localtime_r(&t, &tm);
    char buf[256];
    size_t n = std::strftime(buf, sizeof buf, fmt.c_str(), &tm);
    return Value(std::string(buf, n));
  })));
  return g;
}

}  // namespace mf::jinja

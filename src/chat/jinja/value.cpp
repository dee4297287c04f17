// Value's Python behaviour: rendered text must match transformers' Jinja2, so floats print as
// Python's repr (shortest round-trip digits from std::to_chars) and tojson writes json.dumps's
// separators and escapes rather than nlohmann's dump().
#include "chat/jinja/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <unordered_map>
#include <unordered_set>

#include "chat/jinja/limits.h"
#include "core/error.h"

namespace mf::jinja {

std::optional<Value> CallArgs::get(size_t i, const std::string& name) const {
  if (i < positional.size()) return positional[i];
  for (const auto& [k, v] : keyword)
    if (k == name) return v;
  return std::nullopt;
}

namespace {

const void* container_of(const Value& v) {
  if (v.is_list()) return &v.as_list();
  if (v.is_dict()) return &v.as_dict();
  return nullptr;
}

// Depth-first over containers, each once (`done` holds their depths), with the containers on the
// current path in `open` so that a cycle is seen instead of followed forever. The recursion
// stops at kMaxValueNesting levels.
int depth_of(const Value& v, int level, std::unordered_map<const void*, int>& done,
             std::unordered_set<const void*>& open) {
  const void* key = container_of(v);
  if (!key) return 0;
  if (const auto it = done.find(key); it != done.end()) return it->second;
  if (open.count(key)) fail("jinja: a list or dict that contains itself");
  if (level >= kMaxValueNesting) fail("jinja: lists and dicts nested deeper than ", kMaxValueNesting, " levels");
  open.insert(key);
  int deepest = 0;
  if (v.is_list())
    for (const Value& x : v.as_list()) deepest = std::max(deepest, depth_of(x, level + 1, done, open));
  else
    for (const auto& [k, x] : v.as_dict()) deepest = std::max(deepest, depth_of(x, level + 1, done, open));
  open.erase(key);
  done.emplace(key, deepest + 1);
  return deepest + 1;
}

}  // namespace

int nesting_depth(const Value& v) {
  std::unordered_map<const void*, int> done;
  std::unordered_set<const void*> open;
  return depth_of(v, 0, done, open);
}

Value::Value(List l) : v_(std::make_shared<List>(std::move(l))) { nesting_depth(*this); }
Value::Value(Dict d) : v_(std::make_shared<Dict>(std::move(d))) { nesting_depth(*this); }

Value Value::from_json(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null: return Value(None{});
    case nlohmann::json::value_t::boolean: return Value(j.get<bool>());
    case nlohmann::json::value_t::number_integer: return Value(j.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: return Value(int64_t(j.get<uint64_t>()));
    case nlohmann::json::value_t::number_float: return Value(j.get<double>());
    case nlohmann::json::value_t::string: return Value(j.get<std::string>());
    case nlohmann::json::value_t::array: {
      List l;
      for (const auto& e : j) l.push_back(from_json(e));
      return Value(std::move(l));
    }
    case nlohmann::json::value_t::object: {
      Dict d;
      for (auto it = j.begin(); it != j.end(); ++it) d.emplace_back(it.key(), from_json(it.value()));
      return Value(std::move(d));
    }
    default: fail("jinja: unsupported JSON value in template context");
  }
}

int64_t Value::as_int() const {
  if (is_bool()) return as_bool() ? 1 : 0;
  if (is_int()) return std::get<int64_t>(v_);
  if (is_float()) {
    // Truncation as Python's int(); a value past int64 (or NaN) has no int64 to truncate to.
    const double d = std::get<double>(v_);
    if (!(d > -9.2233720368547758e18 && d < 9.2233720368547758e18)) fail("jinja: ", d, " does not fit in an integer");
    return int64_t(d);
  }
  fail("jinja: expected a number, got ", type_name());
}

double Value::as_double() const {
  if (is_float()) return std::get<double>(v_);
  return double(as_int());
}

const Value* Value::find(const std::string& key) const {
  if (!is_dict()) return nullptr;
  for (const auto& [k, v] : as_dict())
    if (k == key) return &v;
  return nullptr;
}

void Value::set(const std::string& key, Value v) const {
  auto& d = as_dict();
  auto slot = std::find_if(d.begin(), d.end(), [&](const auto& kv) { return kv.first == key; });
  const bool added = slot == d.end();
  Value previous;
  if (added) {
    d.emplace_back(key, std::move(v));
  } else {
    previous = std::move(slot->second);
    slot->second = std::move(v);
  }
  try {
    nesting_depth(*this);  // `ns.x = [ns]` would make the namespace contain itself
  } catch (const Error&) {
    if (added) d.pop_back();
    else std::find_if(d.begin(), d.end(), [&](const auto& kv) { return kv.first == key; })->second = std::move(previous);
    throw;
  }
}

bool Value::truthy() const {
  if (is_undefined() || is_none()) return false;
  if (is_bool()) return as_bool();
  if (is_int()) return as_int() != 0;
  if (is_float()) return as_double() != 0.0;
  if (is_string()) return !as_string().empty();
  if (is_list()) return !as_list().empty();
  if (is_dict()) return !as_dict().empty();
  return true;
}

std::string Value::type_name() const {
  if (is_undefined()) return "undefined";
  if (is_none()) return "NoneType";
  if (is_bool()) return "bool";
  if (is_int()) return "int";
  if (is_float()) return "float";
  if (is_string()) return "str";
  if (is_list()) return "list";
  if (is_dict()) return "dict";
  return "function";
}

std::string python_float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  // Shortest round-trip digits, then laid out the way Python's repr does.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string s(buf, res.ptr);
  bool negative = s[0] == '-';
  if (negative) s.erase(0, 1);
  size_t e = s.find('e');
  std::string mant = s.substr(0, e);
  int exp10 = std::stoi(s.substr(e + 1));
  std::string digits;
  for (char c : mant)
    if (c != '.') digits += c;
  std::string out;
  if (exp10 < -4 || exp10 >= 16) {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char eb[16];
    std::snprintf(eb, sizeof eb, "e%c%02d", exp10 < 0 ? '-' : '+', std::abs(exp10));
    out += eb;
  } else if (exp10 < 0) {
    out = "0." + std::string(size_t(-exp10 - 1), '0') + digits;
  } else {
    if (digits.size() <= size_t(exp10) + 1) {
      out = digits + std::string(size_t(exp10) + 1 - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, size_t(exp10) + 1) + "." + digits.substr(size_t(exp10) + 1);
    }
  }
  return negative ? "-" + out : out;
}

static std::string repr_string(const std::string& s) {
  // Python prefers single quotes unless the text has ' and no ".
  char q = (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
  std::string out(1, q);
  for (unsigned char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == q) out += std::string("\\") + char(q);
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    } else {
      out += char(c);
    }
  }
  return out + q;
}

std::string Value::str() const {
  if (is_undefined()) return "";
  if (is_string()) return as_string();
  return repr();
}

std::string Value::repr() const {
  if (is_undefined()) return "Undefined";
  if (is_none()) return "None";
  if (is_bool()) return as_bool() ? "True" : "False";
  if (is_int()) return std::to_string(as_int());
  if (is_float()) return python_float_repr(as_double());
  if (is_string()) return repr_string(as_string());
  // Shared sub-lists can make a small value print exponentially long: bounded as it grows.
  auto bounded = [](const std::string& out) {
    if (out.size() > kMaxValueBytes) fail("jinja: printing a value longer than ", kMaxValueBytes, " bytes");
  };
  if (is_list()) {
    std::string out = "[";
    const auto& l = as_list();
    for (size_t i = 0; i < l.size(); ++i) {
      out += (i ? ", " : "") + l[i].repr();
      bounded(out);
    }
    return out + "]";
  }
  if (is_dict()) {
    std::string out = "{";
    const auto& d = as_dict();
    for (size_t i = 0; i < d.size(); ++i) {
      out += (i ? ", " : "") + repr_string(d[i].first) + ": " + d[i].second.repr();
      bounded(out);
    }
    return out + "}";
  }
  return "<function>";
}

static void json_string(const std::string& s, std::string& out) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", c);
          out += b;
        } else {
          out += char(c);
        }
    }
  }
  out += '"';
}

static void json_dump(const Value& v, int indent, bool sort_keys, int depth, std::string& out) {
  if (depth > kMaxValueNesting) fail("tojson: value nested deeper than ", kMaxValueNesting, " levels");
  if (out.size() > kMaxValueBytes) fail("tojson: a value longer than ", kMaxValueBytes, " bytes");
  auto newline = [&](int d) {
    if (indent < 0) return;
    out += '\n';
    out.append(size_t(indent) * size_t(d), ' ');
  };
  // json.dumps: ", " and ": " on one line; "," and ": " when indenting.
  const char* item_sep = indent < 0 ? ", " : ",";
  if (v.is_undefined()) fail("jinja: tojson of an undefined value '", v.undefined_name(), "'");
  if (v.is_none()) out += "null";
  else if (v.is_bool()) out += v.as_bool() ? "true" : "false";
  else if (v.is_int()) out += std::to_string(v.as_int());
  else if (v.is_float()) {
    double d = v.as_double();
    if (std::isnan(d)) out += "NaN";
    else if (std::isinf(d)) out += d < 0 ? "-Infinity" : "Infinity";
    else out += python_float_repr(d);
  } else if (v.is_string()) json_string(v.as_string(), out);
  else if (v.is_list()) {
    const auto& l = v.as_list();
    if (l.empty()) { out += "[]"; return; }
    out += '[';
    for (size_t i = 0; i < l.size(); ++i) {
      if (i) out += item_sep;
      newline(depth + 1);
      json_dump(l[i], indent, sort_keys, depth + 1, out);
    }
    newline(depth);
    out += ']';
  } else if (v.is_dict()) {
    Dict d = v.as_dict();
    if (d.empty()) { out += "{}"; return; }
    if (sort_keys)
      std::stable_sort(d.begin(), d.end(), [](auto& a, auto& b) { return a.first < b.first; });
    out += '{';
    for (size_t i = 0; i < d.size(); ++i) {
      if (i) out += item_sep;
      newline(depth + 1);
      json_string(d[i].first, out);
      out += ": ";
      json_dump(d[i].second, indent, sort_keys, depth + 1, out);
    }
    newline(depth);
    out += '}';
  } else {
    fail("jinja: tojson cannot serialise a function");
  }
}

std::string Value::to_json(int indent, bool sort_keys) const {
  std::string out;
  json_dump(*this, indent, sort_keys, 0, out);
  return out;
}

namespace {

// Python compares the items of lists and dicts, taking one object as equal to itself first; the
// budget counts the items compared, so shared structure cannot make one comparison endless.
void charge(int64_t& budget) {
  if (--budget < 0) fail("jinja: comparing values of more than ", kMaxCompareItems, " items");
}

bool equal(const Value& a, const Value& b, int64_t& budget) {
  charge(budget);
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.is_string() && b.is_string()) return a.as_string() == b.as_string();
  if (a.is_none() && b.is_none()) return true;
  if (a.is_undefined() && b.is_undefined()) return true;
  if (a.is_list() && b.is_list()) {
    const auto &x = a.as_list(), &y = b.as_list();
    if (&x == &y) return true;
    if (x.size() != y.size()) return false;
    for (size_t i = 0; i < x.size(); ++i)
      if (!equal(x[i], y[i], budget)) return false;
    return true;
  }
  if (a.is_dict() && b.is_dict()) {
    const auto &x = a.as_dict(), &y = b.as_dict();
    if (&x == &y) return true;
    if (x.size() != y.size()) return false;
    for (const auto& [k, v] : x) {
      const Value* other = b.find(k);
      if (!other || !equal(v, *other, budget)) return false;
    }
    return true;
  }
  return false;
}

bool less(const Value& a, const Value& b, int64_t& budget) {
  charge(budget);
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() < b.as_double();
    return a.as_int() < b.as_int();
  }
  // UTF-8 byte order is code point order, which is Python's string order.
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();
  if (a.is_list() && b.is_list()) {
    const auto &x = a.as_list(), &y = b.as_list();
    if (&x == &y) return false;
    for (size_t i = 0; i < std::min(x.size(), y.size()); ++i) {
      if (equal(x[i], y[i], budget)) continue;
      return less(x[i], y[i], budget);
    }
    return x.size() < y.size();
  }
  fail("jinja: '<' not supported between '", a.type_name(), "' and '", b.type_name(), "'");
}

}  // namespace

bool values_equal(const Value& a, const Value& b) {
  int64_t budget = kMaxCompareItems;
  return equal(a, b, budget);
}

bool value_less(const Value& a, const Value& b) {
  int64_t budget = kMaxCompareItems;
  return less(a, b, budget);
}

}  // namespace mf::jinja

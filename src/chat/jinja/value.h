// Values of the Jinja2 subset used by chat templates, with Python semantics: truthiness,
// equality (1 == 1.0 == True), ordering, str() and repr() text, and json.dumps() output.
// Lists and dicts have reference semantics (shared), as Python objects do; that is what makes
// `{% set ns.x = ... %}` on a namespace() visible outside a loop.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace mf::jinja {

class Value;
using List = std::vector<Value>;
// Insertion-ordered, as Python dicts are; chat-template dicts are small, so lookup is linear.
using Dict = std::vector<std::pair<std::string, Value>>;

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
  // Positional i, else keyword `name`, else nullopt.
  std::optional<Value> get(size_t i, const std::string& name) const;
};
using Function = std::function<Value(const CallArgs&)>;

struct Undefined {
  std::string name;  // what was looked up, for error messages
};
struct None {};

class Value {
 public:
  using Storage = std::variant<Undefined, None, bool, int64_t, double, std::string,
                               std::shared_ptr<List>, std::shared_ptr<Dict>,
                               std::shared_ptr<Function>>;
  Value() : v_(Undefined{}) {}
  Value(None) : v_(None{}) {}
  Value(bool b) : v_(b) {}
  Value(int v) : v_(int64_t(v)) {}
  Value(int64_t v) : v_(v) {}
  Value(double v) : v_(v) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(std::string s) : v_(std::move(s)) {}
  // mf::Error when the new list or dict nests deeper than kMaxValueNesting.
  Value(List l);
  Value(Dict d);
  Value(Function f) : v_(std::make_shared<Function>(std::move(f))) {}
  static Value undefined(std::string name) { Value v; v.v_ = Undefined{std::move(name)}; return v; }
  static Value from_json(const nlohmann::json& j);

  bool is_undefined() const { return std::holds_alternative<Undefined>(v_); }
  bool is_none() const { return std::holds_alternative<None>(v_); }
  bool is_bool() const { return std::holds_alternative<bool>(v_); }
  bool is_int() const { return std::holds_alternative<int64_t>(v_); }
  bool is_float() const { return std::holds_alternative<double>(v_); }
  bool is_number() const { return is_int() || is_float() || is_bool(); }
  bool is_string() const { return std::holds_alternative<std::string>(v_); }
  bool is_list() const { return std::holds_alternative<std::shared_ptr<List>>(v_); }
  bool is_dict() const { return std::holds_alternative<std::shared_ptr<Dict>>(v_); }
  bool is_callable() const { return std::holds_alternative<std::shared_ptr<Function>>(v_); }

  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const;   // bool/int (floats truncate)
  double as_double() const;  // bool/int/float
  const std::string& as_string() const { return std::get<std::string>(v_); }
  List& as_list() const { return *std::get<std::shared_ptr<List>>(v_); }
  Dict& as_dict() const { return *std::get<std::shared_ptr<Dict>>(v_); }
  const Function& as_function() const { return *std::get<std::shared_ptr<Function>>(v_); }
  const std::string& undefined_name() const { return std::get<Undefined>(v_).name; }

  // Dict lookup; nullptr when absent or not a dict.
  const Value* find(const std::string& key) const;
  // Dict insert/overwrite; mf::Error (the dict left as it was) when that would make the dict
  // contain itself or nest deeper than kMaxValueNesting.
  void set(const std::string& key, Value v) const;

  bool truthy() const;
  std::string type_name() const;  // Python's type name, for errors
  std::string str() const;        // Python str()
  std::string repr() const;       // Python repr()
  // Python json.dumps(ensure_ascii=False); indent < 0 means one line.
  std::string to_json(int indent = -1, bool sort_keys = false) const;

 private:
  Storage v_;
};

// Lists and dicts inside each other (0 for anything else); mf::Error past kMaxValueNesting or
// when a value contains itself. Shared sub-values are visited once.
int nesting_depth(const Value& v);
// Python's ==; mf::Error past kMaxCompareItems items compared (shared structure can make a
// small value look exponentially large).
bool values_equal(const Value& a, const Value& b);
// Python's `<`; throws mf::Error for unorderable types, or past kMaxCompareItems items.
bool value_less(const Value& a, const Value& b);
// Python float repr (shortest round-trip, "1.0", "1e-05", "inf").
std::string python_float_repr(double d);

}  // namespace mf::jinja

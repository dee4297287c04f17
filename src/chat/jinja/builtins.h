// Jinja2's filters, tests, global functions, and Python's str/dict methods as far as chat
// templates use them. Each throws mf::Error (without position; the interpreter adds it).
#pragma once
#include <string>
#include <vector>

#include "chat/jinja/value.h"

namespace mf::jinja {

Value apply_filter(const std::string& name, const Value& v, const CallArgs& args);
bool apply_test(const std::string& name, const Value& v, const CallArgs& args);
// obj.name: a dict key, or a bound method of str/dict/list; Undefined when absent.
Value get_attribute(const Value& obj, const std::string& name);
// obj[key] with Python indexing (negative indices count from the end).
Value get_item(const Value& obj, const Value& key);
Value slice_value(const Value& obj, const Value& start, const Value& stop, const Value& step);
// Python iteration: list items, dict keys, string characters; Undefined is empty.
std::vector<Value> iterate(const Value& v);
bool contains(const Value& container, const Value& item);
Value binary_op(const std::string& op, const Value& a, const Value& b);
// Globals every template sees: range, namespace, dict, raise_exception, strftime_now.
Dict make_globals();
// Code points of a UTF-8 string, each as its own string.
std::vector<std::string> utf8_chars(const std::string& s);

}  // namespace mf::jinja

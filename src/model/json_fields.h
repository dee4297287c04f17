// Typed reads of optional JSON fields that name the key when its type is wrong or its value does
// not fit: an integer is range-checked, never truncated (4294967312 is not 16).
#pragma once
#include <climits>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/json_file.h"

namespace mf::json_fields {

inline bool present(const nlohmann::json& j, const char* key) { return j.contains(key) && !j[key].is_null(); }

// x as an int, or mf::Error naming the key when it is not an integer or does not fit in one.
inline int checked_int(const nlohmann::json& x, const char* key, const std::string& where) {
  MF_CHECK(x.is_number_integer(), where, ": '", key, "' must be an integer, got ", json_excerpt(x));
  const bool fits = x.is_number_unsigned() ? x.get<uint64_t>() <= uint64_t(INT_MAX)
                                           : x.get<int64_t>() >= INT_MIN && x.get<int64_t>() <= INT_MAX;
  MF_CHECK(fits, where, ": '", key, "' = ", json_excerpt(x), " is out of range (", INT_MIN, "..", INT_MAX, ")");
  return int(x.get<int64_t>());
}

inline int get_int(const nlohmann::json& j, const char* key, int fallback, const std::string& where) {
  if (!present(j, key)) return fallback;
  return checked_int(j[key], key, where);
}

inline double get_double(const nlohmann::json& j, const char* key, double fallback, const std::string& where) {
  if (!present(j, key)) return fallback;
  MF_CHECK(j[key].is_number(), where, ": '", key, "' must be a number, got ", json_excerpt(j[key]));
  return j[key].get<double>();
}

inline bool get_bool(const nlohmann::json& j, const char* key, bool fallback, const std::string& where) {
  if (!present(j, key)) return fallback;
  MF_CHECK(j[key].is_boolean(), where, ": '", key, "' must be true or false, got ", json_excerpt(j[key]));
  return j[key].get<bool>();
}

inline std::string get_string(const nlohmann::json& j, const char* key, const std::string& fallback,
                              const std::string& where) {
  if (!present(j, key)) return fallback;
  MF_CHECK(j[key].is_string(), where, ": '", key, "' must be a string, got ", json_excerpt(j[key]));
  return j[key].get<std::string>();
}

// An integer or a list of integers (eos_token_id); absent/null gives an empty list.
inline std::vector<int> get_int_or_list(const nlohmann::json& j, const char* key, const std::string& where) {
  std::vector<int> out;
  if (!present(j, key)) return out;
  const auto& v = j[key];
  auto add = [&](const nlohmann::json& x) {
    MF_CHECK(x.is_number_integer(), where, ": '", key, "' must be an integer or a list of integers, got ", json_excerpt(v));
    out.push_back(checked_int(x, key, where));
  };
  if (v.is_array()) {
    for (const auto& x : v) add(x);
  } else {
    add(v);
  }
  return out;
}

}  // namespace mf::json_fields

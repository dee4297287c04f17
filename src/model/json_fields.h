// Typed reads of optional JSON fields that name the key when its type is wrong.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace mf::json_fields {

inline bool present(const nlohmann::json& j, const char* key) { return j.contains(key) && !j[key].is_null(); }

inline int get_int(const nlohmann::json& j, const char* key, int fallback, const std::string& where) {
  if (!present(j, key)) return fallback;
  MF_CHECK(j[key].is_number_integer(), where, ": '", key, "' must be an integer, got ", j[key].dump());
  return j[key].get<int>();
}

inline double get_double(const nlohmann::json& j, const char* key, double fallback, const std::string& where) {
  if (!present(j, key)) return fallback;
  MF_CHECK(j[key].is_number(), where, ": '", key, "' must be a number, got ", j[key].dump());
  return j[key].get<double>();
}

inline bool get_bool(const nlohmann::json& j, const char* key, bool fallback, const std::string& where) {
  if (!present(j, key)) return fallback;
  MF_CHECK(j[key].is_boolean(), where, ": '", key, "' must be true or false, got ", j[key].dump());
  return j[key].get<bool>();
}

inline std::string get_string(const nlohmann::json& j, const char* key, const std::string& fallback,
                              const std::string& where) {
  if (!present(j, key)) return fallback;
  MF_CHECK(j[key].is_string(), where, ": '", key, "' must be a string, got ", j[key].dump());
  return j[key].get<std::string>();
}

// An integer or a list of integers (eos_token_id); absent/null gives an empty list.
inline std::vector<int> get_int_or_list(const nlohmann::json& j, const char* key, const std::string& where) {
  std::vector<int> out;
  if (!present(j, key)) return out;
  const auto& v = j[key];
  auto add = [&](const nlohmann::json& x) {
    MF_CHECK(x.is_number_integer(), where, ": '", key, "' must be an integer or a list of integers, got ", v.dump());
    out.push_back(x.get<int>());
  };
  if (v.is_array()) {
    for (const auto& x : v) add(x);
  } else {
    add(v);
  }
  return out;
}

}  // namespace mf::json_fields

// YAML recipes read as JSON values, with strict key checking: a key nobody reads is an error
// naming its path, so a typo never silently falls back to a default. The reader records every
// key it is asked for, so the reading code is the one list of a mapping's keys. `--set a.b=value`
// overrides (YAML values) are applied before reading.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/json_file.h"

namespace mf {

// Throws mf::Error naming file:line for invalid YAML and the assignment for a bad override.
nlohmann::json load_yaml_file(const std::string& path, const std::vector<std::string>& overrides = {});

class ConfigReader {
 public:
  // `where` is the key path of this mapping ("" at the top), `file` the recipe for messages.
  ConfigReader(const nlohmann::json& j, std::string where, std::string file);
  // Fails on a key of the mapping that no get / raw / sub asked for, listing those that were.
  void finish() const;
  // Integers must be integers that fit (2.5 and 4294967298 are not an int); numbers must be
  // finite.
  template <class T>
  void get(const char* key, T& out) const {
    asked_.insert(key);
    if (!j_.contains(key) || j_[key].is_null()) return;
    const nlohmann::json& v = j_[key];
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      MF_CHECK(v.is_number_integer(), file_, ": '", prefix(), key, "' must be an integer, got ", json_excerpt(v));
      const bool fits = v.is_number_unsigned()
                            ? v.get<uint64_t>() <= uint64_t(std::numeric_limits<T>::max())
                            : v.get<int64_t>() >= int64_t(std::numeric_limits<T>::min()) &&
                                  (std::is_unsigned_v<T> || v.get<int64_t>() <= int64_t(std::numeric_limits<T>::max()));
      MF_CHECK(fits, file_, ": '", prefix(), key, "' = ", json_excerpt(v), " is out of range");
    } else if constexpr (std::is_floating_point_v<T>) {
      MF_CHECK(v.is_number() && std::isfinite(v.get<double>()), file_, ": '", prefix(), key,
               "' must be a finite number, got ", json_excerpt(v));
    }
    try {
      out = v.get<T>();
    } catch (const nlohmann::json::exception&) {
      fail(file_, ": '", prefix(), key, "' has the wrong type (", json_excerpt(v), ")");
    }
  }
  nlohmann::json raw(const char* key) const {
    asked_.insert(key);
    return j_.contains(key) ? j_[key] : nlohmann::json();
  }
  ConfigReader sub(const char* key) const;
  std::string path_of(const char* key) const { return prefix() + key; }
  const std::string& file() const { return file_; }

 private:
  std::string prefix() const { return where_.empty() ? "" : where_ + "."; }
  nlohmann::json j_;
  std::string where_, file_;
  mutable std::set<std::string> asked_;  // keys read so far: what finish() accepts
};

// Relative paths are relative to `base` (a recipe's folder); "~/" is the home directory.
std::string resolve_recipe_path(const std::string& base, const std::string& p);

}  // namespace mf

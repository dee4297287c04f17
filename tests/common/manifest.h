// Reading the fixtures that tests/reference/gen_*.py scripts write in the manifest format:
// $MOEFORGE_FIXTURES/manifest.json lists cases {"name", "op", parameters..., "arrays": {name:
// {"file", "dtype", "shape"}}} and each array is a raw little-endian file beside it.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compare.h"

namespace mf::test {

inline std::filesystem::path fixture_dir() {
  const char* dir = std::getenv("MOEFORGE_FIXTURES");
  return dir ? std::filesystem::path(dir) : std::filesystem::path();
}

// The whole manifest, or null if the generator has not run.
inline const nlohmann::json* manifest() {
  static const nlohmann::json m = [] {
    std::ifstream in(fixture_dir() / "manifest.json");
    return in ? nlohmann::json::parse(in) : nlohmann::json();
  }();
  return m.is_null() ? nullptr : &m;
}

template <class T>
std::vector<T> load_array(const nlohmann::json& c, const std::string& name) {
  const nlohmann::json& a = c.at("arrays").at(name);
  const std::filesystem::path path = fixture_dir() / a.at("file").get<std::string>();
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << "cannot open " << path;
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<T> out(bytes.size() / sizeof(T));
  std::memcpy(out.data(), bytes.data(), out.size() * sizeof(T));
  return out;
}

inline std::vector<nlohmann::json> cases_of(const std::string& op) {
  std::vector<nlohmann::json> out;
  if (const nlohmann::json* m = manifest())
    for (const nlohmann::json& c : m->at("cases"))
      if (c.at("op") == op) out.push_back(c);
  return out;
}

// max_rel (compare.h) of got against want must stay within tol.
inline void expect_close(const std::vector<float>& got, const std::vector<float>& want, const std::string& what,
                         double tol = 1e-4) {
  ASSERT_EQ(got.size(), want.size()) << what;
  const Mismatch m = compare(got.data(), want.data(), int64_t(want.size()));
  EXPECT_LE(m.max_rel, tol) << what << ": " << m.str();
}

// max |got - want| / rms(want) must stay within tol: for errors that scale with the whole
// vector (an angle off by an ulp rotates every entry), not with each entry's own size.
inline void expect_close_to_scale(const std::vector<float>& got, const std::vector<float>& want,
                                  const std::string& what, double tol) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double sumsq = 0;
  for (float v : want) sumsq += double(v) * v;
  const double rms = std::sqrt(sumsq / double(std::max<size_t>(want.size(), 1)));
  const Mismatch m = compare(got.data(), want.data(), int64_t(want.size()));
  EXPECT_LE(m.max_abs / rms, tol) << what << ": " << m.str() << " rms=" << rms;
}

}  // namespace mf::test

// Skips the test when the generator wrote nothing, fails it when the op has no cases.
#define REQUIRE_CASES(list, op)                                                                        \
  if (!mf::test::manifest()) GTEST_SKIP() << "no fixtures in " << mf::test::fixture_dir()              \
                                          << " (ctest runs the gen_*.py generator first)";             \
  ASSERT_FALSE(list.empty()) << "no '" << op << "' cases in the manifest"

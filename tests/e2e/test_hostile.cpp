// The hostile-input suite: every malformed model file, directory, recipe and dataset that
// gen_hostile.py writes goes through the CLI as a user would run it, and each must end in a clear
// error: exit status 1 or 2 (never a signal, never a hang), a message naming the broken file (and
// its key where it has one), no "internal error" (a library exception that escaped unexplained),
// within seconds and a bounded amount of memory. The valid files the cases are made from must
// load, so a case cannot pass by breaking something other than what it names.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "bounded_run.h"

namespace {
using namespace mf::test;

// Generous for a loaded 2-core CI machine: a tiny model loads in well under a second.
constexpr double kMaxSeconds = 20;
constexpr long kMaxResidentMib = 1024;

struct Case {
  std::string name, kind, expect, stdin_text;
  std::vector<std::string> args, names;
};

std::vector<Case> load_cases(const std::string& kind) {
  const char* dir = std::getenv("MOEFORGE_FIXTURES");
  const fs::path manifest = fs::path(dir ? dir : "") / "cases.json";
  if (!fs::exists(manifest)) return {};
  const auto j = nlohmann::json::parse(slurp(manifest));
  std::vector<Case> out;
  for (const auto& c : j["cases"]) {
    if (c["kind"] != kind) continue;
    out.push_back({c["name"], c["kind"], c["expect"], c.value("stdin", ""), c["args"], c["names"]});
  }
  return out;
}

std::string describe(const Case& c, const BoundedResult& r) {
  std::string s = c.name + ": moeforge";
  for (const auto& a : c.args) s += " " + a;
  s += "\n  exited=" + std::to_string(r.exited) + " rc=" + std::to_string(r.rc) + " signal=" + std::to_string(r.signal) +
       " timed_out=" + std::to_string(r.timed_out) + " seconds=" + std::to_string(r.seconds) +
       " max_rss_mib=" + std::to_string(r.max_rss_mib) + "\n  stderr: " + r.err.substr(0, 600);
  return s;
}

void run_kind(const std::string& kind, size_t at_least) {
  if (binary().empty()) GTEST_SKIP() << "MOEFORGE_BIN not set (run through ctest)";
  const std::vector<Case> cases = load_cases(kind);
  if (cases.empty()) GTEST_SKIP() << "no cases.json in $MOEFORGE_FIXTURES (gen_hostile.py writes it)";
  EXPECT_GE(cases.size(), at_least) << "the generator wrote fewer " << kind << " cases than expected";
  Bounds bounds;
  bounds.seconds = 2 * kMaxSeconds;
  std::map<std::string, int> outcomes;
  for (const Case& c : cases) {
    const BoundedResult r = run_bounded(c.args, bounds, c.stdin_text);
    const std::string what = describe(c, r);
    EXPECT_TRUE(r.exited) << what;
    EXPECT_LT(r.seconds, kMaxSeconds) << what;
    EXPECT_LT(r.max_rss_mib, kMaxResidentMib) << what;
    if (c.expect == "ok") {
      EXPECT_EQ(r.rc, 0) << what;
      continue;
    }
    EXPECT_TRUE(r.rc == 1 || r.rc == 2) << what;
    EXPECT_FALSE(has(r.err, "internal error")) << what;
    for (const auto& n : c.names) EXPECT_TRUE(has(r.err, n)) << "the message does not name '" << n << "'\n" << what;
    ++outcomes[std::to_string(r.rc)];
  }
  std::string summary;
  for (const auto& [rc, n] : outcomes) summary += " rc " + rc + ": " + std::to_string(n);
  std::cout << cases.size() << " " << kind << " cases;" << summary << "\n";
}

TEST(Hostile, ValidFilesTheCasesAreMadeFromLoad) { run_kind("control", 4); }
TEST(Hostile, GgufFiles) { run_kind("gguf", 60); }
TEST(Hostile, HfDirectoriesSafetensorsConfigTokenizerTemplate) { run_kind("hf", 80); }
TEST(Hostile, ModelPathsThatAreNotModels) { run_kind("dir", 3); }
TEST(Hostile, Recipes) { run_kind("recipe", 35); }
TEST(Hostile, Datasets) { run_kind("dataset", 15); }

}  // namespace

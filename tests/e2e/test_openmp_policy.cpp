// The OpenMP wait policy moeforge chooses for the commands that run models (a short spin, then
// sleep, instead of spinning through a competitor's time slice for milliseconds), and
// that a user's own choice wins. libgomp prints what it read (OMP_DISPLAY_ENV=verbose) each time
// it starts, so a re-executed run shows its second reading.
#include <gtest/gtest.h>

#include "cli_run.h"

namespace {
using namespace mf::test;

// The GOMP_SPINCOUNT values libgomp printed, in order.
std::vector<std::string> spin_counts(const std::string& stderr_text) {
  std::vector<std::string> out;
  const std::string key = "GOMP_SPINCOUNT = '";
  for (size_t at = stderr_text.find(key); at != std::string::npos; at = stderr_text.find(key, at + 1)) {
    const size_t begin = at + key.size();
    out.push_back(stderr_text.substr(begin, stderr_text.find('\'', begin) - begin));
  }
  return out;
}

std::string env_prefix(const std::string& assignments) {
  return "env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT OMP_DISPLAY_ENV=verbose " + assignments + " " + quote(binary());
}

TEST(OpenmpPolicy, ModelCommandsSleepBetweenRegionsUnlessTheUserChose) {
  if (binary().empty()) GTEST_SKIP() << "MOEFORGE_BIN not set (run through ctest)";
  // A model command: libgomp's default (300000 spins) in the first run, moeforge's 3000 after it.
  auto chosen = run_shell(env_prefix("") + " generate --help");
  ASSERT_EQ(chosen.rc, 0) << chosen.err;
  EXPECT_EQ(spin_counts(chosen.err), (std::vector<std::string>{"300000", "3000"})) << chosen.err;
  EXPECT_TRUE(has(chosen.out, "usage: moeforge generate")) << chosen.out;  // same arguments after it

  // The user's setting wins, and nothing runs twice.
  auto user = run_shell(env_prefix("GOMP_SPINCOUNT=77") + " train --help");
  EXPECT_EQ(spin_counts(user.err), (std::vector<std::string>{"77"})) << user.err;
  auto active = run_shell(env_prefix("OMP_WAIT_POLICY=active") + " serve --help");
  EXPECT_EQ(spin_counts(active.err), (std::vector<std::string>{"30000000000"})) << active.err;

  // Quick commands are not executed twice.
  auto quick = run_shell(env_prefix("") + " info --help");
  EXPECT_EQ(spin_counts(quick.err), (std::vector<std::string>{"300000"})) << quick.err;
}

}  // namespace

// The bounded load test of `moeforge serve` (label "load"): serve_load.py runs 64 concurrent
// streaming clients for 60 s against a tiny MoE over loopback and requires no error but the
// documented 503s, no crash, a clean SIGTERM, and RSS after 1,000 requests within 10% of RSS after
// 100. Skips without the openai client (scripts/setup-interop.sh installs it).
#include <gtest/gtest.h>
#include <unistd.h>

#include "cli_run.h"

namespace {
using namespace mf::test;

TEST(ServeLoad, SixtyFourStreamsForSixtySeconds) {
  if (binary().empty()) GTEST_SKIP() << "MOEFORGE_BIN not set (run through ctest)";
  const char* home = std::getenv("HOME");
  const std::string python = std::string(home ? home : "") + "/.cache/moeforge/interop-venv/bin/python";
  if (!fs::exists(python) || run_shell(quote(python) + " -c 'import openai'").rc != 0)
    GTEST_SKIP() << "the openai client is not installed (scripts/setup-interop.sh installs it)";
  const fs::path work = fs::temp_directory_path() / ("moeforge_serve_load_" + std::to_string(::getpid()));
  const std::string script = std::string(std::getenv("MOEFORGE_SOURCE_DIR")) + "/tests/load/serve_load.py";
  const RunResult r = run_shell(quote(python) + " " + quote(script) + " " + quote(work.string()) + " 60");
  std::cout << r.out;
  fs::remove_all(work);
  EXPECT_EQ(r.rc, 0) << r.err;
}

}  // namespace

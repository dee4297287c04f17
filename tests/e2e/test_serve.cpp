// `moeforge serve` driven by the official OpenAI Python client: serve_client.py trains a tiny
// MoE, starts the real server on a free loopback port and checks the API, errors, streaming,
// cancellation, concurrency, exact batching and a clean SIGTERM (and SmolLM2 when cached). The
// client lives in the interop virtual environment (scripts/setup-interop.sh); without it this
// test skips and says so.
#include <gtest/gtest.h>
#include <unistd.h>

#include "cli_run.h"

namespace {
using namespace mf::test;

std::string client_python() {
  if (const char* p = std::getenv("MOEFORGE_INTEROP_PYTHON")) return p;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "") + "/.cache/moeforge/interop-venv/bin/python";
}

TEST(Serve, OpenAiClientAgainstTheRealServer) {
  if (binary().empty()) GTEST_SKIP() << "MOEFORGE_BIN not set (run through ctest)";
  const std::string python = client_python();
  if (!fs::exists(python) || run_shell(quote(python) + " -c 'import openai'").rc != 0)
    GTEST_SKIP() << "the openai client is not installed (scripts/setup-interop.sh installs it)";
  const fs::path work = fs::temp_directory_path() / ("moeforge_serve_e2e_" + std::to_string(::getpid()));
  const std::string script = std::string(std::getenv("MOEFORGE_SOURCE_DIR")) + "/tests/e2e/serve_client.py";
  const RunResult r = run_shell(quote(python) + " " + quote(script) + " " + quote(work.string()));
  std::cout << r.out;
  fs::remove_all(work);
  EXPECT_EQ(r.rc, 0) << r.err;
}

}  // namespace

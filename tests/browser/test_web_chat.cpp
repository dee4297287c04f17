// The page `moeforge serve` answers at GET / in headless Chromium (label "browser"): it must chat
// over two turns and draw the MoE router view (web_chat_check.py, browser_check.py). Skips without
// Debian's chromium or the interop environment (scripts/setup.sh installs both).
#include <gtest/gtest.h>
#include <unistd.h>

#include "cli_run.h"

namespace {
using namespace mf::test;

TEST(WebChat, ChatsAndShowsTheRouterInChromium) {
  if (binary().empty()) GTEST_SKIP() << "MOEFORGE_BIN not set (run through ctest)";
  if (run_shell("command -v chromium").rc != 0) GTEST_SKIP() << "chromium is not installed (apt-get install chromium)";
  const char* home = std::getenv("HOME");
  const std::string python = std::string(home ? home : "") + "/.cache/moeforge/interop-venv/bin/python";
  if (!fs::exists(python) || run_shell(quote(python) + " -c 'import openai'").rc != 0)
    GTEST_SKIP() << "the interop environment is not installed (scripts/setup-interop.sh)";
  const fs::path work = fs::temp_directory_path() / ("moeforge_web_chat_" + std::to_string(::getpid()));
  const std::string script = std::string(std::getenv("MOEFORGE_SOURCE_DIR")) + "/tests/browser/web_chat_check.py";
  const RunResult r = run_shell(quote(python) + " " + quote(script) + " " + quote(work.string()));
  std::cout << r.out;
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(fs::exists(work / "web-chat.png"));
  fs::remove_all(work);
}

}  // namespace

// The static report pages in headless Chromium (label "browser"): `moeforge plot RUN1 RUN2` and the
// routing page of `moeforge inspect --data -o`, laid out and checked by reports_check.py /
// report_check.py (ticks on every axis and not overlapping, legends readable, single points drawn,
// numbered colour scales, dispatch accuracy explained). Skips without Debian's chromium.
#include <gtest/gtest.h>
#include <unistd.h>

#include "cli_run.h"

namespace {
using namespace mf::test;

TEST(ReportPages, PlotAndRoutingPagesReadWellInChromium) {
  if (binary().empty()) GTEST_SKIP() << "MOEFORGE_BIN not set (run through ctest)";
  if (run_shell("command -v chromium").rc != 0) GTEST_SKIP() << "chromium is not installed (apt-get install chromium)";
  const fs::path work = fs::temp_directory_path() / ("moeforge_report_pages_" + std::to_string(::getpid()));
  const std::string script = std::string(std::getenv("MOEFORGE_SOURCE_DIR")) + "/tests/browser/reports_check.py";
  const RunResult r = run_shell("/usr/bin/python3 " + quote(script) + " " + quote(work.string()));
  std::cout << r.out;
  EXPECT_EQ(r.rc, 0) << r.err;
  for (const char* png : {"plot.png", "plot-routing.png", "plot-expert-load.png", "inspect-routing.png"}) {
    EXPECT_TRUE(fs::exists(work / png)) << png;
    if (fs::exists(work / png)) EXPECT_GT(fs::file_size(work / png), 10000u) << png;  // a real picture, not a blank
  }
  fs::remove_all(work);
}

}  // namespace

// ProgressLine: redrawn in place on a terminal, plain lines in a log (train, eval, inspect and
// perplexity all print through it).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "core/progress_line.h"

namespace {

// Runs `updates` over a job of `total` units into a temporary file and returns what was written.
std::string written(bool terminal, int64_t total, int64_t first, double seconds_per_unit) {
  std::FILE* f = std::tmpfile();
  EXPECT_NE(f, nullptr);
  {
    mf::ProgressLine line(f, terminal, total, first);
    for (int64_t done = first + 1; done <= total; ++done)
      line.update(done, "[" + std::to_string(done) + "/" + std::to_string(total) + "]",
                  double(done - first) * seconds_per_unit);
  }
  std::string out(size_t(std::ftell(f)), '\0');
  std::rewind(f);
  EXPECT_EQ(std::fread(out.data(), 1, out.size(), f), out.size());
  std::fclose(f);
  return out;
}

size_t count(const std::string& s, char c) { return size_t(std::count(s.begin(), s.end(), c)); }

TEST(ProgressLine, ALogGetsAboutTwentyPlainLinesAndTheLastOne) {
  const std::string log = written(false, 1000, 0, 0.001);
  EXPECT_EQ(count(log, '\r'), 0u);
  EXPECT_GE(count(log, '\n'), 20u);
  EXPECT_LE(count(log, '\n'), 22u);
  EXPECT_NE(log.find("[1/1000]\n"), std::string::npos) << "the first update is shown";
  EXPECT_NE(log.find("[1000/1000]\n"), std::string::npos) << "the last update is shown";
}

TEST(ProgressLine, ASlowJobGetsALineAtLeastEveryThirtySeconds) {
  // 100 units of 10 s each: every 5th unit is a bucket line; every 3rd unit is past 30 s.
  const std::string log = written(false, 100, 0, 10.0);
  EXPECT_GE(count(log, '\n'), 33u);
}

TEST(ProgressLine, ResumedJobsCountFromWhereTheyStart) {
  const std::string log = written(false, 1000, 900, 0.001);
  EXPECT_NE(log.find("[901/1000]\n"), std::string::npos);
  EXPECT_GE(count(log, '\n'), 20u);
  EXPECT_LE(count(log, '\n'), 22u);
}

TEST(ProgressLine, ATerminalRedrawsOneLineAndEndsIt) {
  const std::string tty = written(true, 50, 0, 0.01);
  EXPECT_EQ(count(tty, '\r'), 50u);
  EXPECT_EQ(count(tty, '\n'), 1u);
  EXPECT_EQ(tty.back(), '\n');
}

}  // namespace

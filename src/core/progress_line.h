// One progress line on a stream (stderr): redrawn in place with '\r' on a terminal; in a log
// file (not a TTY) written as plain lines, about 20 over the whole job and at least one every
// 30 s, plus the last one, so a log has a readable record instead of a pile of carriage returns.
// Used by every long-running command (train, eval, inspect, perplexity).
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>

namespace mf {

class ProgressLine {
 public:
  // `total`: units of the job (steps, tokens, records); `first`: where it starts (a resumed run).
  ProgressLine(std::FILE* out, bool terminal, int64_t total, int64_t first = 0);
  // Shows `text` for progress `done` (first < done <= total); `elapsed_s` since the job started.
  void update(int64_t done, const std::string& text, double elapsed_s);
  // Ends a redrawn line so that other output starts on a fresh line (no-op for plain lines).
  void break_line();

  // True when stderr is a terminal: the choice every command makes.
  static bool stderr_is_terminal();

 private:
  std::FILE* out_;
  bool terminal_;
  int64_t total_, first_, every_;
  int64_t last_bucket_ = -1;      // (done - first) / every_ at the last plain line
  double last_print_s_ = -1e300;  // elapsed time of the last plain line
  bool open_ = false;             // a redrawn line is on screen without its newline
};

}  // namespace mf

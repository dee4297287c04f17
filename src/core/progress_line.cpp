#include "core/progress_line.h"

#include <unistd.h>

#include <algorithm>

namespace mf {

namespace {

constexpr int64_t kPlainLinesPerJob = 20;
constexpr double kPlainLineMaxGapSeconds = 30;

}  // namespace

ProgressLine::ProgressLine(std::FILE* out, bool terminal, int64_t total, int64_t first)
    : out_(out), terminal_(terminal), total_(total), first_(first),
      every_(std::max<int64_t>(1, (total - first) / kPlainLinesPerJob)) {}

bool ProgressLine::stderr_is_terminal() { return isatty(STDERR_FILENO) != 0; }

void ProgressLine::update(int64_t done, const std::string& text, double elapsed_s) {
  const bool last = done >= total_;
  if (terminal_) {
    std::fprintf(out_, "\r%s   ", text.c_str());
    open_ = true;
    if (last) break_line();
  } else {
    const int64_t bucket = (done - first_) / every_;
    if (last || last_bucket_ < 0 || bucket != last_bucket_ || elapsed_s - last_print_s_ >= kPlainLineMaxGapSeconds) {
      std::fprintf(out_, "%s\n", text.c_str());
      last_bucket_ = bucket;
      last_print_s_ = elapsed_s;
    }
  }
  std::fflush(out_);
}

void ProgressLine::break_line() {
  if (!open_) return;
  std::fputc('\n', out_);
  open_ = false;
  std::fflush(out_);
}

}  // namespace mf

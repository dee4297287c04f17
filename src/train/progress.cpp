#include "train/progress.h"

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "core/timer.h"
#include "train/trainer.h"

namespace mf {

namespace {

std::string formatted(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

}  // namespace

TrainingProgress::TrainingProgress(std::FILE* out, bool terminal, int64_t total_steps, int64_t first_step)
    : out_(out), total_(total_steps), first_(first_step), line_(out, terminal, total_steps, first_step) {}

void TrainingProgress::step(int64_t step, double loss, double lr, double tokens_per_s, double elapsed_s, bool last) {
  const double rate = double(step - first_) / std::max(elapsed_s, 1e-9);
  const std::string eta = format_duration(double(total_ - step) / std::max(rate, 1e-9));
  const std::string text = cat("[", step, "/", total_, "] loss ", formatted("%.4f", loss), "  lr ", formatted("%.2e", lr),
                               "  ", int64_t(tokens_per_s + 0.5), " tok/s  elapsed ", format_duration(elapsed_s),
                               "  ETA ", eta);
  // A run stopped early (time budget, stop_after) still ends its line.
  line_.update(last ? total_ : step, text, elapsed_s);
}

void TrainingProgress::evaluation(int64_t step, double train_loss, double valid_loss, bool best) {
  line_.break_line();
  std::fprintf(out_, "step %lld: train %.4f, val %.4f%s\n", (long long)step, train_loss, valid_loss,
               best ? " (best so far)" : "");
  std::fflush(out_);
}

void TrainingProgress::note(const std::string& text) {
  if (text.empty()) return;
  line_.break_line();
  std::fprintf(out_, "%s%s", text.c_str(), text.back() == '\n' ? "" : "\n");
  std::fflush(out_);
}

std::string training_start_notes(bool resumed, int64_t first_step, int64_t total_steps, int64_t warmup_steps,
                                 const std::string& checkpoint_path) {
  std::string notes;
  if (resumed)
    notes += cat("resuming from step ", first_step, " of ", total_steps, " (", checkpoint_path, ")\n");
  if (warmup_steps > 0 && total_steps <= warmup_steps)
    notes += cat("warning: the run ends at step ", total_steps, ", inside its ", warmup_steps,
                 " warmup steps: the learning rate never reaches its peak (lower train.warmup or raise the steps)\n");
  return notes;
}

std::string training_summary(const TrainResult& r) {
  std::string s = cat("trained ", r.steps, " steps in ", format_duration(r.wall_s), " (", int64_t(r.tokens_per_s + 0.5),
                      " tokens/s); final train loss ", formatted("%.4f", r.train_loss));
  if (r.best_step > 0)
    s += cat("; best val ", formatted("%.4f", r.best_valid_loss), " at step ", r.best_step, " (", r.out_dir, "/best)");
  s += cat("; model: ", r.model_dir);
  return s;
}

}  // namespace mf

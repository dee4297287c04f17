// What a training run tells the person watching it, on stderr: a progress line that redraws in
// place on a terminal and is written as plain lines in a log (a `\r` pile is unreadable there),
// one line per evaluation, notes at the start (the resume point, a run that ends inside its
// warmup), and a human summary at the end.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>

#include "core/progress_line.h"

namespace mf {

struct TrainResult;

class TrainingProgress {
 public:
  // `terminal`: `out` is a TTY (redraw in place); else plain lines (core/progress_line.h).
  TrainingProgress(std::FILE* out, bool terminal, int64_t total_steps, int64_t first_step);

  void step(int64_t step, double loss, double lr, double tokens_per_s, double elapsed_s, bool last);
  // "step 500: train 1.6200, val 1.7100 (best so far)"
  void evaluation(int64_t step, double train_loss, double valid_loss, bool best);
  void note(const std::string& text);

 private:
  std::FILE* out_;
  int64_t total_, first_;
  ProgressLine line_;
};

// The notes a run starts with: where a resumed run continues, and a warning when the run ends
// before its warmup does (the learning rate never reaches its peak). Empty when none applies.
std::string training_start_notes(bool resumed, int64_t first_step, int64_t total_steps, int64_t warmup_steps,
                                 const std::string& checkpoint_path);

// "trained 300 steps in 2m14s (2,336 tokens/s); final train loss 1.6200; best val 1.7100 at
// step 250 (RUN/best); model: RUN/model"
std::string training_summary(const TrainResult& r);

}  // namespace mf

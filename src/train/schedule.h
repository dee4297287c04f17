// Learning-rate schedule: linear warmup, then cosine decay to a floor.
#pragma once
#include <cstdint>

namespace mf {

struct WarmupCosine {
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  float min_ratio = 0.1f;  // the floor, as a fraction of the base learning rate

  // Multiplier of the base learning rate for the update with 0-based index `step`:
  // (step + 1) / warmup during warmup (so the first update already moves), then
  // min + (1 - min) * (1 + cos(pi * progress)) / 2 with progress from 0 to 1 over the
  // remaining steps, and min after total_steps.
  float multiplier(int64_t step) const;
};

}  // namespace mf

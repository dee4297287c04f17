#include "train/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace mf {

float WarmupCosine::multiplier(int64_t step) const {
  if (step < warmup_steps) return float(step + 1) / float(warmup_steps);
  const int64_t decay_steps = std::max<int64_t>(1, total_steps - warmup_steps);
  const double progress = std::clamp(double(step - warmup_steps) / double(decay_steps), 0.0, 1.0);
  const double cosine = 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
  return float(min_ratio + (1.0 - min_ratio) * cosine);
}

}  // namespace mf

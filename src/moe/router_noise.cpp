#include "moe/router_noise.h"

#include "core/rng.h"

namespace mf {

uint64_t router_noise_step_seed(uint64_t run_seed, int64_t step, uint64_t micro_batch) {
  // 64 micro-batches per step before two steps' seeds could meet.
  return (run_seed * 1000003ull + uint64_t(step)) * 64ull + micro_batch;
}

void draw_router_noise(uint64_t step_seed, int layer, std::span<float> out) {
  // Layers mix in after a golden-ratio multiply, so nearby step seeds give unrelated streams.
  Rng rng(step_seed * 0x9E3779B97F4A7C15ull + uint64_t(layer) + 1);
  for (float& x : out) x = rng.normal();
}

}  // namespace mf

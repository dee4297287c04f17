// The Gaussian draws of noisy top-k routing (Shazeer et al.), in one place for every device:
// a step's noise is a function of (run seed, optimizer step, micro-batch) and the layer only,
// so a resumed run draws the same noise and the CPU and CUDA paths route alike.
#pragma once
#include <cstdint>
#include <span>

namespace mf {

// The seed of one micro-batch's noise (StepOptions::noise_seed).
uint64_t router_noise_step_seed(uint64_t run_seed, int64_t step, uint64_t micro_batch);

// Fills out ([tokens, experts] of MoE layer `layer`) with standard normal draws.
void draw_router_noise(uint64_t step_seed, int layer, std::span<float> out);

}  // namespace mf

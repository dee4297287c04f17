// Forward and backward of one SwiGLU MLP, down(silu(gate(x)) * up(x)), on the CPU: the one
// implementation that dense layers, routed experts and shared experts use, in inference and in
// training alike.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "model/layer_weights.h"

namespace mf {

// Gradient buffers of one SwiGLU MLP (null: frozen, no weight gradient).
struct SwigluGrads {
  float *gate = nullptr, *up = nullptr, *down = nullptr;
};

// What one application keeps for its backward: gate and up pre-activations and their product.
struct SwigluActs {
  std::vector<float> a, b, h;
  // keep_product: h as well (a backward follows); otherwise the product lives in a.
  void resize(int64_t rows, int64_t width, bool keep_product = true) {
    a.resize(size_t(rows * width));
    b.resize(size_t(rows * width));
    if (keep_product) h.resize(size_t(rows * width));
  }
  float* product(bool keep_product) { return keep_product ? h.data() : a.data(); }
};

// out[rows, H] (written) from x[rows, H]; a, b, h: [rows, I]. h may be a when nothing is kept
// for a backward (inference): the product then overwrites the gate pre-activations.
void swiglu_forward(const SwigluWeights& w, const float* x, int64_t rows, int64_t H, float* a, float* b, float* h,
                    float* out);

// One application of swiglu_forward, for swiglu_forward_many.
struct SwigluJob {
  const SwigluWeights* w;
  const float* x;
  int64_t rows;
  float *a, *b, *h, *out;
};
// Several MLPs (a MoE layer's routed experts) with swiglu_forward's results bit for bit: every
// gate and up linear in one linear_many call, then every down linear in another, so a decode step
// waits twice per MoE layer instead of three times per routed expert.
void swiglu_forward_many(std::span<const SwigluJob> jobs, int64_t H);

// Backward from dout; a and b are overwritten with their gradients, dh is scratch [rows, I].
// dx is accumulated when `accumulate`, else written.
void swiglu_backward(const SwigluWeights& w, const SwigluGrads& g, const float* x, int64_t rows, int64_t H, float* a,
                     float* b, const float* h, const float* dout, float* dh, float* dx, bool accumulate);

}  // namespace mf

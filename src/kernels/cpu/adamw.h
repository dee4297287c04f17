// The AdamW update of one fp32 tensor (Loshchilov & Hutter: weight decay decoupled from the
// gradient), exactly as torch.optim.AdamW computes it, and the global gradient norm.
#pragma once
#include <cstdint>
#include <span>

namespace mf {

struct AdamWHyper {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
  int64_t step = 1;  // 1-based count of updates including this one (bias correction)
};

// param *= 1 - lr * weight_decay; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
// param -= lr / (1 - b1^step) * m / (sqrt(v) / sqrt(1 - b2^step) + eps). In place on param, m, v.
void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWHyper& h);

// Sum of squares of every gradient, accumulated in double (the square root is the global norm).
double sum_of_squares(const float* x, int64_t n);

// x *= s.
void scale_inplace(float* x, int64_t n, float s);

}  // namespace mf

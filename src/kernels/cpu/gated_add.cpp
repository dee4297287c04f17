#include "kernels/cpu/gated_add.h"

#include <cmath>

namespace mf {
namespace {

float gate_of(const float* gate_logits, int64_t t) {
  return gate_logits ? 1.0f / (1.0f + std::exp(-gate_logits[t])) : 1.0f;
}

}  // namespace

void sigmoid_gated_add(const float* y, const float* gate_logits, int64_t rows, int64_t H, float* out) {
  for (int64_t t = 0; t < rows; ++t) {
    const float s = gate_of(gate_logits, t);
    const float* yt = y + t * H;
    float* ot = out + t * H;
    for (int64_t i = 0; i < H; ++i) ot[i] += s * yt[i];
  }
}

void sigmoid_gated_add_backward(const float* dout, const float* y, const float* gate_logits, int64_t rows, int64_t H,
                                float* dy, float* dgate_logits) {
  for (int64_t t = 0; t < rows; ++t) {
    const float s = gate_of(gate_logits, t);
    const float* dt = dout + t * H;
    const float* yt = y + t * H;
    float* dyt = dy + t * H;
    double dot = 0;
    for (int64_t i = 0; i < H; ++i) {
      dyt[i] = s * dt[i];
      dot += double(dt[i]) * double(yt[i]);
    }
    if (gate_logits && dgate_logits) dgate_logits[t] = float(dot * s * (1.0f - s));
  }
}

}  // namespace mf

#include "kernels/cpu/softmax_xent.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace mf {

CrossEntropySums cross_entropy(const float* logits, const int32_t* targets, int64_t rows, int64_t vocab,
                               float grad_scale, float* dlogits) {
  MF_CHECK(rows >= 0 && vocab > 0, "cross_entropy: bad shape [", rows, ", ", vocab, "]");
  for (int64_t r = 0; r < rows; ++r)
    MF_CHECK(targets[r] < vocab, "cross_entropy: target ", targets[r], " of row ", r, " is outside the vocabulary of ",
             vocab);
  double loss = 0;
  int64_t counted = 0;
#pragma omp parallel for schedule(static) reduction(+ : loss, counted) if (rows * vocab >= (1 << 15))
  for (int64_t r = 0; r < rows; ++r) {
    const float* z = logits + r * vocab;
    const int32_t target = targets[r];
    if (target < 0) {
      if (dlogits) std::fill(dlogits + r * vocab, dlogits + (r + 1) * vocab, 0.0f);
      continue;
    }
    float zmax = z[0];
    for (int64_t i = 1; i < vocab; ++i) zmax = std::max(zmax, z[i]);
    // The sum of exponentials in double: vocabularies of 50k+ entries lose digits in fp32.
    double sum = 0;
    for (int64_t i = 0; i < vocab; ++i) sum += std::exp(double(z[i] - zmax));
    const double log_sum = std::log(sum);
    loss += log_sum - double(z[target] - zmax);
    ++counted;
    if (dlogits) {
      float* d = dlogits + r * vocab;
      const double inv = 1.0 / sum;
      // Element i of z is read just before d[i] overwrites it, so d may alias z.
      for (int64_t i = 0; i < vocab; ++i) d[i] = grad_scale * float(std::exp(double(z[i] - zmax)) * inv);
      d[target] -= grad_scale;
    }
  }
  return {loss, counted};
}

}  // namespace mf

#include "kernels/cpu/rope.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/work_pool.h"

namespace mf {

RopeTable::RopeTable(int head_dim, int max_positions, double theta)
    : head_dim_(head_dim), max_positions_(max_positions) {
  MF_CHECK(head_dim > 0 && head_dim % 2 == 0, "RopeTable: head_dim must be positive and even, got ",
           head_dim);
  MF_CHECK(max_positions > 0, "RopeTable: max_positions must be positive, got ", max_positions);
  MF_CHECK(theta > 0, "RopeTable: theta must be positive, got ", theta);
  const int half = head_dim / 2;
  // HF builds inv_freq and the angles in fp32 (angle = float(pos) * inv_freq); doing the same
  // keeps far positions bit-compatible with the reference instead of "more exact" than it.
  std::vector<float> inv_freq(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i)
    inv_freq[size_t(i)] = float(1.0 / std::pow(theta, double(float(2 * i) / float(head_dim))));
  cos_.resize(size_t(max_positions) * size_t(head_dim));
  sin_.resize(cos_.size());
  for (int p = 0; p < max_positions; ++p) {
    float* c = cos_.data() + size_t(p) * size_t(head_dim);
    float* s = sin_.data() + size_t(p) * size_t(head_dim);
    for (int i = 0; i < half; ++i) {
      float angle = float(p) * inv_freq[size_t(i)];
      c[i] = c[i + half] = float(std::cos(double(angle)));
      s[i] = s[i + half] = float(std::sin(double(angle)));
    }
  }
}

namespace {

// direction +1: the forward rotation; -1: its transpose (the backward).
void rotate_head(float* x, const float* c, const float* s, int half, float direction) {
#pragma omp simd
  for (int i = 0; i < half; ++i) {
    const float a = x[i], b = x[i + half];
    const float sl = direction * s[i], sh = direction * s[i + half];
    x[i] = a * c[i] - b * sl;
    x[i + half] = b * c[i + half] + a * sh;
  }
}

void rotate(float* x, int64_t tokens, int heads, const int32_t* positions, const RopeTable& table, float direction,
            const char* what) {
  MF_CHECK(tokens >= 0 && heads > 0, what, ": bad shape [", tokens, ", ", heads, "]");
  for (int64_t t = 0; t < tokens; ++t)
    MF_CHECK(positions[t] >= 0 && positions[t] < table.max_positions(), what, ": position ", positions[t],
             " of token ", t, " is outside the table [0, ", table.max_positions(), ")");
  const int d = table.head_dim();
  const int64_t items = tokens * heads;
  auto work = [&](int64_t item) {
    const int64_t t = item / heads;
    rotate_head(x + item * d, table.cos(positions[t]), table.sin(positions[t]), d / 2, direction);
  };
  parallel_ranges(items, std::max<int64_t>(1, (int64_t(1) << 14) / d), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) work(i);
  });
}

}  // namespace

void rope_apply(float* x, int64_t tokens, int heads, const int32_t* positions, const RopeTable& table) {
  rotate(x, tokens, heads, positions, table, 1.0f, "rope_apply");
}

void rope_backward(float* dx, int64_t tokens, int heads, const int32_t* positions, const RopeTable& table) {
  rotate(dx, tokens, heads, positions, table, -1.0f, "rope_backward");
}

}  // namespace mf

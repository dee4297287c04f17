#include "model/lm_head_train.h"

#include <algorithm>

#include "kernels/cpu/matmul.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/softmax_xent.h"

namespace mf {
namespace {

// Rows of the LM head computed at once: bounds the [rows, vocab] logits buffer.
constexpr int64_t kHeadChunk = 256;

template <class T>
T* sized(std::vector<T>& v, int64_t n) {
  v.resize(static_cast<size_t>(n));
  return v.data();
}

}  // namespace

double lm_head_train(const ModelConfig& c, const TransformerWeights& W, const LmHeadGrads& g, const float* x_final,
                     std::span<const int32_t> targets, float lm_scale, float* dx, LmHeadScratch& s) {
  const int64_t N = int64_t(targets.size()), H = c.hidden_size, V = c.vocab_size;
  const bool backward = dx != nullptr;
  float* hf = sized(s.hf, N * H);
  rmsnorm(x_final, W.final_norm.data<float>(), N, H, c.rms_norm_eps, hf);
  if (backward) std::fill(dx, dx + N * H, 0.0f);  // rows without a target get no gradient
  s.rows.clear();
  for (int64_t i = 0; i < N; ++i)
    if (targets[size_t(i)] >= 0) s.rows.push_back(i);
  const int64_t n_scored = int64_t(s.rows.size()), chunk = std::min(n_scored, kHeadChunk);
  float* logits = sized(s.logits, chunk * V);
  float* head_in = sized(s.head_in, chunk * H);
  float* head_dx = sized(s.head_dx, chunk * H);
  int32_t* head_targets = sized(s.targets, chunk);
  double loss_sum = 0;
  for (int64_t r0 = 0; r0 < n_scored; r0 += kHeadChunk) {
    const int64_t rows = std::min(kHeadChunk, n_scored - r0);
    for (int64_t j = 0; j < rows; ++j) {
      const int64_t i = s.rows[size_t(r0 + j)];
      std::copy_n(hf + i * H, H, head_in + j * H);
      head_targets[j] = targets[size_t(i)];
    }
    linear(head_in, rows, H, W.head.w, nullptr, logits);
    loss_sum += cross_entropy(logits, head_targets, rows, V, lm_scale, backward ? logits : nullptr).loss_sum;
    if (!backward) continue;
    if (g.head) linear_backward_weight(logits, head_in, rows, V, H, g.head, nullptr);
    linear_backward_input(logits, rows, V, W.head.w, head_dx, false);
    for (int64_t j = 0; j < rows; ++j) std::copy_n(head_dx + j * H, H, dx + s.rows[size_t(r0 + j)] * H);
  }
  if (backward) rmsnorm_backward(x_final, W.final_norm.data<float>(), dx, N, H, c.rms_norm_eps, dx, g.final_norm);
  return loss_sum;
}

}  // namespace mf

#include "gpu/lm_head_train.h"

#include <algorithm>

#include "kernels/cuda/norm.h"
#include "kernels/cuda/rows.h"

namespace mf::gpu {
namespace {

// Bytes of LM-head logits computed at once ([rows, vocab] bf16).
constexpr size_t kHeadChunkBytes = size_t(256) << 20;

}  // namespace

cuda::CrossEntropyTotals* lm_head_train(DeviceStep& d, const ModelConfig& c, const LmHeadTensors& W,
                                        const float* x_final, int64_t N, const ScoredRows& scored, float lm_scale,
                                        const BackwardBuffers* b) {
  cuda::DeviceArena& A = d.arena;
  cuda::Blas& B = d.blas;
  const cudaStream_t st = d.s();
  const int64_t H = c.hidden_size, V = c.vocab_size, n_scored = scored.count;
  const size_t NH = size_t(N * H);
  float* rstd = A.alloc<float>(size_t(N), "rstd");
  bf16* hf = A.alloc<bf16>(NH, "final norm output");
  cuda::rmsnorm(x_final, W.final_norm->f32, N, H, c.rms_norm_eps, hf, rstd, st);
  const int64_t chunk =
      std::max<int64_t>(1, std::min<int64_t>(std::max<int64_t>(n_scored, 1), int64_t(kHeadChunkBytes / size_t(2 * V))));
  bf16* head_in = A.alloc<bf16>(size_t(chunk * H), "head input");
  bf16* logits = A.alloc<bf16>(size_t(chunk * V), "logits");
  bf16* head_dx = A.alloc<bf16>(size_t(chunk * H), "head input gradient");
  float* row_loss = A.alloc<float>(size_t(std::max<int64_t>(n_scored, 1)), "row losses");
  auto* totals = A.alloc<cuda::CrossEntropyTotals>(1, "loss totals");
  zero_device(totals, sizeof(cuda::CrossEntropyTotals), st);
  bf16* dhf = b ? A.alloc<bf16>(NH, "final norm gradient") : nullptr;
  if (b) zero_device(dhf, NH * 2, st);
  for (int64_t r0 = 0; r0 < n_scored; r0 += chunk) {
    const int64_t rows = std::min(chunk, n_scored - r0);
    cuda::gather_rows(hf, scored.rows + r0, rows, H, head_in, st);
    cuda::linear_forward(B, head_in, W.head->compute, logits, OutType::bf16, rows, V, H);
    cuda::cross_entropy_forward_backward(logits, scored.targets + r0, rows, V, b ? lm_scale : 0.0f, row_loss + r0, st);
    if (!b) continue;
    if (W.head->grad) cuda::linear_backward_weight(B, logits, head_in, W.head->grad, rows, V, H);
    cuda::linear_backward_input(B, logits, W.head->compute, head_dx, OutType::bf16, rows, V, H);
    cuda::scatter_rows(head_dx, scored.rows + r0, rows, H, dhf, st);
  }
  cuda::sum_rows(row_loss, scored.targets, n_scored, totals, st);
  if (b) {
    zero_device(b->dx, NH * 4, st);
    cuda::rmsnorm_backward(dhf, x_final, W.final_norm->f32, rstd, N, H, b->dx, W.final_norm->grad, b->norm_scratch,
                           st);
  }
  return totals;
}

}  // namespace mf::gpu

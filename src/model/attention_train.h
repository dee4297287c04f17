// Training forward and backward of one attention block on the CPU,
//   x_mid = x_in + o_proj(attention(rope(q, k, v projections of rmsnorm(x_in)))),
// over `batch` sequences of T tokens each, every one from position 0 (no cache). The forward
// keeps what the backward needs; the backward recomputes the attention probabilities.
// Inference's cached version is attention_block (model/blocks.h).
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/cpu/rope.h"
#include "model/config.h"
#include "model/layer_weights.h"

namespace mf {

// The rows of one training call: `batch` sequences of `seq_len` tokens, row-major.
struct SequenceBatch {
  int batch = 1;
  int64_t seq_len = 0;
  const int32_t* positions = nullptr;  // [rows]: each row's position in its sequence
  const RopeTable* rope = nullptr;
  int64_t rows() const { return int64_t(batch) * seq_len; }
};

// Gradient buffers of one attention block (null: frozen, or no such tensor).
struct AttentionGrads {
  float* norm = nullptr;
  float *q = nullptr, *k = nullptr, *v = nullptr, *o = nullptr;
  float *q_bias = nullptr, *k_bias = nullptr, *v_bias = nullptr, *o_bias = nullptr;
};

// What the forward keeps for the backward (buffers reused across steps).
struct AttentionActs {
  std::vector<float> x_in, h1, q, k, v, attn;  // [N, H], [N, H], [N, qdim], [N, kvdim] x2, [N, qdim]
};

// Working memory of the blocks' passes, shared by all layers of a step.
struct AttentionScratch {
  std::vector<float> proj;                 // [N, max(H, qdim)]: o_proj output / d attention output
  std::vector<float> dq, dk, dv, dh;       // [N, qdim], [N, kvdim] x2, [N, H]
  std::vector<float> forward, backward;    // the attention kernels' own scratch
};

// x [N, H] becomes x_mid in place.
void attention_train_forward(const ModelConfig& c, const LayerWeights& L, const SequenceBatch& sb, float* x,
                             AttentionActs& A, AttentionScratch& s);

// dx [N, H] holds d x_mid on entry and d x_in on return (the residual path plus the branch);
// weight gradients are accumulated into g.
void attention_train_backward(const ModelConfig& c, const LayerWeights& L, const AttentionGrads& g,
                              const SequenceBatch& sb, const AttentionActs& A, float* dx, AttentionScratch& s);

}  // namespace mf

// Rotary position embeddings, Hugging Face "rotate_half" convention: dimension i is paired
// with i + head_dim/2 (not interleaved pairs as in the original paper / GGML's NORM mode).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace mf {

// Precomputed cos/sin for positions [0, max_positions); each row has head_dim entries with
// the first half repeated in the second (as HF's emb = cat(freqs, freqs)).
class RopeTable {
 public:
  RopeTable(int head_dim, int max_positions, double theta);
  const float* cos(int pos) const { return cos_.data() + size_t(pos) * size_t(head_dim_); }
  const float* sin(int pos) const { return sin_.data() + size_t(pos) * size_t(head_dim_); }
  int head_dim() const { return head_dim_; }
  int max_positions() const { return max_positions_; }

 private:
  int head_dim_;
  int max_positions_;
  std::vector<float> cos_;
  std::vector<float> sin_;
};

// Rotates x in place. x is [tokens, heads, head_dim] (contiguous); positions[t] is token t's
// absolute position, checked to lie in [0, table.max_positions()).
void rope_apply(float* x, int64_t tokens, int heads, const int32_t* positions,
                const RopeTable& table);

// Backward of rope_apply: the rotation is orthogonal, so the gradient is rotated back by the
// same angle (sin negated). In place on dx, same layout and checks as rope_apply.
void rope_backward(float* dx, int64_t tokens, int heads, const int32_t* positions, const RopeTable& table);

}  // namespace mf

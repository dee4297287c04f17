#include "model/workspace.h"

#include <algorithm>

#include "kernels/cpu/attention.h"

namespace mf {

Workspace::Workspace(const ModelConfig& c, int64_t n, int64_t max_tokens_per_seq, int64_t cache_capacity)
    : tokens(n), per_seq(max_tokens_per_seq), capacity(cache_capacity) {
  const int64_t H = c.hidden_size, D = c.effective_head_dim();
  const int64_t qdim = c.num_heads * D, kvdim = c.num_kv_heads * D;
  // Dense layers' SwiGLU width (MoE layers grow their own buffers in `moe`).
  const int64_t width = int64_t(c.intermediate_size);
  x.resize(size_t(n * H));
  h.resize(size_t(n * H));
  out.resize(size_t(n * H));
  q.resize(size_t(n * qdim));
  k.resize(size_t(n * kvdim));
  v.resize(size_t(n * kvdim));
  attn.resize(size_t(n * qdim));
  ffn_a.resize(size_t(n * width));
  ffn_b.resize(size_t(n * width));
  // A sliding window attends one query at a time, which needs less scratch than this.
  attn_scratch.resize(attention_scratch_floats(max_tokens_per_seq, cache_capacity));
  positions.resize(size_t(n));
}

}  // namespace mf

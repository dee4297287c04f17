#include "model/workspace.h"

#include <algorithm>

#include "kernels/cpu/attention.h"

namespace mf {

Workspace::Workspace(const ModelConfig& c, int64_t n, int64_t max_tokens_per_seq, int64_t cache_capacity)
    : tokens(n), per_seq(max_tokens_per_seq), capacity(cache_capacity) {
  const int64_t H = c.hidden_size, D = c.effective_head_dim();
  const int64_t qdim = c.num_heads * D, kvdim = c.num_kv_heads * D;
  // Routed rows: N * k for token choice, experts * capacity for expert choice (whichever
  // capacity, training or evaluation, is larger).
  int64_t slots = 1;
  if (c.is_moe()) {
    for (bool training : {false, true}) {
      const RouteOptions o = route_options(c.routing, c.top_k, training);
      const int64_t rows = o.policy == RouterPolicy::ExpertChoice ? c.num_experts * expert_capacity(o, n, c.num_experts)
                                                                  : n * c.top_k;
      slots = std::max(slots, (rows + n - 1) / std::max<int64_t>(n, 1));
    }
  }
  const int64_t width = std::max({int64_t(c.intermediate_size), int64_t(c.expert_intermediate_size()),
                                  int64_t(c.shared_expert_intermediate_size)});
  x.resize(size_t(n * H));
  h.resize(size_t(n * H));
  out.resize(size_t(n * H));
  q.resize(size_t(n * qdim));
  k.resize(size_t(n * kvdim));
  v.resize(size_t(n * kvdim));
  attn.resize(size_t(n * qdim));
  ffn_a.resize(size_t(n * slots * width));
  ffn_b.resize(size_t(n * slots * width));
  if (c.is_moe()) {
    gathered.resize(size_t(n * slots * H));
    expert_out.resize(size_t(n * slots * H));
    router.resize(size_t(n * c.num_experts));
    if (c.shared_expert_intermediate_size > 0) shared_gate.resize(size_t(n));
  }
  // A sliding window attends one query at a time, which needs less scratch than this.
  attn_scratch.resize(attention_scratch_floats(max_tokens_per_seq, cache_capacity, c.num_heads));
  positions.resize(size_t(n));
}

}  // namespace mf

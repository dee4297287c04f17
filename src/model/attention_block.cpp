#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/activation.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/norm.h"
#include "model/blocks.h"

namespace mf {
namespace {

const float* bias_or_null(const Tensor& b) { return b.numel() ? b.data<float>() : nullptr; }

// Attention of one sequence's T queries (already rotated) against its cache of S keys.
void attend_sequence(const ModelConfig& c, const float* q, CacheRows k, CacheRows v, int64_t T, int64_t S, float* out,
                     float* scratch) {
  const int D = c.effective_head_dim();
  const float scale = 1.0f / std::sqrt(float(D));
  const int64_t window = c.sliding_window;
  if (window <= 0 || S <= window) {
    attention_forward_cached(q, k, v, T, S, c.num_heads, c.num_kv_heads, D, scale, out, scratch);
    return;
  }
  // Sliding window: query at absolute position p sees keys (p - window, p]; the kernel's
  // causal window always starts at 0, so each query gets its own shifted view of the cache.
  const int64_t qdim = int64_t(c.num_heads) * D, past = S - T;
  auto from = [](CacheRows rows, int64_t start) {
    rows.data = static_cast<const uint8_t*>(rows.data) + size_t(start * rows.kv_stride) * dtype_bytes(rows.type, 1);
    return rows;
  };
  for (int64_t t = 0; t < T; ++t) {
    const int64_t pos = past + t, start = std::max<int64_t>(0, pos - window + 1);
    attention_forward_cached(q + t * qdim, from(k, start), from(v, start), 1, pos - start + 1, c.num_heads,
                             c.num_kv_heads, D, scale, out + t * qdim, scratch);
  }
}

}  // namespace

void attention_block(const ModelConfig& c, const LayerWeights& L, int layer, std::span<const int> lengths,
                     const RopeTable& rope, KVCache& cache, std::span<const int> slots, Workspace& ws) {
  const int64_t N = ws.tokens, H = c.hidden_size, D = c.effective_head_dim();
  const int64_t qdim = c.num_heads * D, kvdim = c.num_kv_heads * D;
  rmsnorm(ws.x.data(), L.attn_norm.data<float>(), N, H, c.rms_norm_eps, ws.h.data());
  const LinearJob qkv[] = {{ws.h.data(), N, H, &L.q, bias_or_null(L.q_bias), ws.q.data()},
                           {ws.h.data(), N, H, &L.k, bias_or_null(L.k_bias), ws.k.data()},
                           {ws.h.data(), N, H, &L.v, bias_or_null(L.v_bias), ws.v.data()}};
  linear_many(qkv);
  rope_apply(ws.q.data(), N, c.num_heads, ws.positions.data(), rope);
  rope_apply(ws.k.data(), N, c.num_kv_heads, ws.positions.data(), rope);
  const int batch = int(lengths.size());
  // The leading one-token rows: append each sequence's key and value, then one parallel attention
  // over all of them (each gets what it would get alone).
  int decoding = 0;
  if (c.sliding_window <= 0)
    while (decoding < batch && lengths[size_t(decoding)] == 1) ++decoding;
  if (decoding > 1) {
    // Reused from layer to layer and step to step.
    std::vector<CacheRows>& keys = ws.decode_keys;
    std::vector<CacheRows>& values = ws.decode_values;
    std::vector<int64_t>& seen = ws.decode_lengths;
    keys.resize(size_t(decoding));
    values.resize(size_t(decoding));
    seen.resize(size_t(decoding));
    for (int b = 0; b < decoding; ++b) {
      const int seq = slots[size_t(b)];
      const int64_t past = cache.length(seq);
      cache.write(layer, seq, past, ws.k.data() + int64_t(b) * kvdim, ws.v.data() + int64_t(b) * kvdim, 1);
      keys[size_t(b)] = cache.keys(layer, seq);
      values[size_t(b)] = cache.values(layer, seq);
      seen[size_t(b)] = past + 1;
    }
    attention_decode_batch(ws.q.data(), keys.data(), values.data(), seen.data(), decoding, c.num_heads,
                           c.num_kv_heads, int(D), 1.0f / std::sqrt(float(D)), ws.attn.data());
  } else {
    decoding = 0;
  }
  int64_t row0 = decoding;
  for (int b = decoding; b < batch; ++b) {
    const int seq = slots[size_t(b)];
    const int64_t past = cache.length(seq), T = lengths[size_t(b)];
    cache.write(layer, seq, past, ws.k.data() + row0 * kvdim, ws.v.data() + row0 * kvdim, T);
    attend_sequence(c, ws.q.data() + row0 * qdim, cache.keys(layer, seq), cache.values(layer, seq), T, past + T,
                    ws.attn.data() + row0 * qdim, ws.attn_scratch.data());
    row0 += T;
  }
  linear(ws.attn.data(), N, qdim, L.o, bias_or_null(L.o_bias), ws.out.data());
  add_inplace(ws.x.data(), ws.out.data(), N * H);
}

}  // namespace mf

#include "model/attention_train.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/activation.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/norm.h"

namespace mf {
namespace {

const float* bias_or_null(const Tensor& b) { return b.numel() ? b.data<float>() : nullptr; }

template <class T>
T* sized(std::vector<T>& v, int64_t n) {
  v.resize(static_cast<size_t>(n));
  return v.data();
}

// Weight and bias gradients of a linear layer, each only if it trains.
void param_grads(const float* dy, const float* x, int64_t M, int64_t N, int64_t K, float* dweight, float* dbias) {
  if (dweight) {
    linear_backward_weight(dy, x, M, N, K, dweight, dbias);
  } else if (dbias) {
    for (int64_t r = 0; r < M; ++r)
      for (int64_t n = 0; n < N; ++n) dbias[n] += dy[r * N + n];
  }
}

}  // namespace

void attention_train_forward(const ModelConfig& c, const LayerWeights& L, const SequenceBatch& sb, float* x,
                             AttentionActs& A, AttentionScratch& s) {
  const int64_t N = sb.rows(), T = sb.seq_len, H = c.hidden_size, D = c.effective_head_dim();
  const int64_t qdim = int64_t(c.num_heads) * D, kvdim = int64_t(c.num_kv_heads) * D;
  const float scale = 1.0f / std::sqrt(float(D));
  A.x_in.assign(x, x + N * H);
  float* h1 = sized(A.h1, N * H);
  rmsnorm(x, L.attn_norm.data<float>(), N, H, c.rms_norm_eps, h1);
  float* q = sized(A.q, N * qdim);
  float* k = sized(A.k, N * kvdim);
  float* v = sized(A.v, N * kvdim);
  linear(h1, N, H, L.q.w, bias_or_null(L.q_bias), q);
  linear(h1, N, H, L.k.w, bias_or_null(L.k_bias), k);
  linear(h1, N, H, L.v.w, bias_or_null(L.v_bias), v);
  rope_apply(q, N, c.num_heads, sb.positions, *sb.rope);
  rope_apply(k, N, c.num_kv_heads, sb.positions, *sb.rope);
  float* attn = sized(A.attn, N * qdim);
  float* scratch = sized(s.forward, int64_t(attention_scratch_floats(T, T)));
  for (int b = 0; b < sb.batch; ++b)
    attention_forward(q + b * T * qdim, k + b * T * kvdim, v + b * T * kvdim, kvdim, T, T, c.num_heads,
                      c.num_kv_heads, int(D), scale, attn + b * T * qdim, scratch);
  float* o = sized(s.proj, N * std::max(H, qdim));
  linear(attn, N, qdim, L.o.w, bias_or_null(L.o_bias), o);
  add_inplace(x, o, N * H);
}

void attention_train_backward(const ModelConfig& c, const LayerWeights& L, const AttentionGrads& g,
                              const SequenceBatch& sb, const AttentionActs& A, float* dx, AttentionScratch& s) {
  const int64_t N = sb.rows(), T = sb.seq_len, H = c.hidden_size, D = c.effective_head_dim();
  const int64_t qdim = int64_t(c.num_heads) * D, kvdim = int64_t(c.num_kv_heads) * D;
  const float scale = 1.0f / std::sqrt(float(D));
  float* dattn = sized(s.proj, N * std::max(H, qdim));
  float* dq = sized(s.dq, N * qdim);
  float* dk = sized(s.dk, N * kvdim);
  float* dv = sized(s.dv, N * kvdim);
  float* dh = sized(s.dh, N * H);
  float* scratch = sized(s.backward, int64_t(attention_backward_scratch_floats(T, T)));
  param_grads(dx, A.attn.data(), N, H, qdim, g.o, g.o_bias);
  linear_backward_input(dx, N, H, L.o.w, dattn, false);
  attention_backward(A.q.data(), A.k.data(), A.v.data(), kvdim, dattn, T, T, c.num_heads, c.num_kv_heads, int(D),
                     scale, dq, dk, dv, scratch, sb.batch);
  rope_backward(dq, N, c.num_heads, sb.positions, *sb.rope);
  rope_backward(dk, N, c.num_kv_heads, sb.positions, *sb.rope);
  param_grads(dq, A.h1.data(), N, qdim, H, g.q, g.q_bias);
  param_grads(dk, A.h1.data(), N, kvdim, H, g.k, g.k_bias);
  param_grads(dv, A.h1.data(), N, kvdim, H, g.v, g.v_bias);
  linear_backward_input(dq, N, qdim, L.q.w, dh, false);
  linear_backward_input(dk, N, kvdim, L.k.w, dh, true);
  linear_backward_input(dv, N, kvdim, L.v.w, dh, true);
  rmsnorm_backward(A.x_in.data(), L.attn_norm.data<float>(), dh, N, H, c.rms_norm_eps, dh, g.norm);
  add_inplace(dx, dh, N * H);
}

}  // namespace mf

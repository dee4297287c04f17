#include "gpu/attention_train.h"

#include <algorithm>
#include <cmath>

#include "kernels/cuda/adamw.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/bias.h"
#include "kernels/cuda/norm.h"
#include "kernels/cuda/rows.h"

namespace mf::gpu {

cuda::AttentionShape attention_shape(const ModelConfig& c, const DeviceSequenceBatch& sb) {
  const int D = c.effective_head_dim();
  return {sb.batch, int(sb.seq_len), c.num_heads, c.num_kv_heads, D, 1.0f / std::sqrt(float(D))};
}

void attention_train_forward(DeviceStep& d, const ModelConfig& c, const GpuLayer& L, const DeviceSequenceBatch& sb,
                             const float* x_in, float* x_mid, AttentionSaved& S) {
  cuda::DeviceArena& A = d.arena;
  cuda::Blas& B = d.blas;
  const cudaStream_t st = d.s();
  const int64_t N = sb.rows(), H = c.hidden_size, D = c.effective_head_dim();
  const int64_t qdim = int64_t(c.num_heads) * D, kvdim = int64_t(c.num_kv_heads) * D;
  const size_t NH = size_t(N * H);
  S.x_in = x_in;
  S.rstd = A.alloc<float>(size_t(N), "rstd");
  S.h = A.alloc<bf16>(NH, "attention input");
  cuda::rmsnorm(x_in, L.attn_norm->f32, N, H, c.rms_norm_eps, S.h, S.rstd, st);
  S.q = A.alloc<bf16>(size_t(N * qdim), "q");
  S.k = A.alloc<bf16>(size_t(N * kvdim), "k");
  S.v = A.alloc<bf16>(size_t(N * kvdim), "v");
  cuda::linear_forward(B, S.h, L.q->compute, S.q, OutType::bf16, N, qdim, H);
  cuda::linear_forward(B, S.h, L.k->compute, S.k, OutType::bf16, N, kvdim, H);
  cuda::linear_forward(B, S.h, L.v->compute, S.v, OutType::bf16, N, kvdim, H);
  if (L.q_bias) cuda::add_bias(S.q, L.q_bias->f32, N, qdim, st);
  if (L.k_bias) cuda::add_bias(S.k, L.k_bias->f32, N, kvdim, st);
  if (L.v_bias) cuda::add_bias(S.v, L.v_bias->f32, N, kvdim, st);
  cuda::rope_apply(S.q, N, c.num_heads, int(D), sb.positions, *sb.rope, st);
  cuda::rope_apply(S.k, N, c.num_kv_heads, int(D), sb.positions, *sb.rope, st);
  S.attn = A.alloc<bf16>(size_t(N * qdim), "attention output");
  S.lse = A.alloc<float>(size_t(N) * size_t(c.num_heads), "attention lse");
  cuda::attention_forward(S.q, S.k, S.v, S.attn, S.lse, attention_shape(c, sb), st);
  copy_device(x_mid, x_in, NH * 4, st);
  cuda::linear_forward(B, S.attn, L.o->compute, x_mid, OutType::f32, N, H, qdim, 1.0f);
  if (L.o_bias) cuda::add_bias(x_mid, L.o_bias->f32, N, H, st);
}

AttentionBackwardScratch alloc_attention_backward(cuda::DeviceArena& A, const ModelConfig& c,
                                                  const DeviceSequenceBatch& sb) {
  const int64_t N = sb.rows(), H = c.hidden_size, D = c.effective_head_dim();
  const int64_t qdim = int64_t(c.num_heads) * D, kvdim = int64_t(c.num_kv_heads) * D;
  AttentionBackwardScratch s;
  const size_t attn_bytes = cuda::attention_backward_scratch_bytes(attention_shape(c, sb));
  s.attention = static_cast<float*>(A.allocate(std::max<size_t>(attn_bytes, 4), "attention scratch"));
  s.dq = A.alloc<bf16>(size_t(N * qdim), "dq");
  s.dk = A.alloc<bf16>(size_t(N * kvdim), "dk");
  s.dv = A.alloc<bf16>(size_t(N * kvdim), "dv");
  s.dattn = A.alloc<bf16>(size_t(N * qdim), "d attention output");
  s.bias = A.allocate(cuda::bias_backward_scratch_bytes(N, std::max(qdim, H)), "bias gradient scratch");
  return s;
}

void attention_train_backward(DeviceStep& d, const ModelConfig& c, const GpuLayer& L, const DeviceSequenceBatch& sb,
                              const AttentionSaved& S, const BackwardBuffers& b, const AttentionBackwardScratch& s) {
  cuda::Blas& B = d.blas;
  const cudaStream_t st = d.s();
  const int64_t N = sb.rows(), H = c.hidden_size, D = c.effective_head_dim();
  const int64_t qdim = int64_t(c.num_heads) * D, kvdim = int64_t(c.num_kv_heads) * D;
  const int64_t NH = N * H;
  cuda::convert_f32_to_bf16(b.dx, b.dxb, NH, st);
  if (L.o_bias && L.o_bias->grad) cuda::bias_backward(b.dx, N, H, L.o_bias->grad, s.bias, st);
  if (L.o->grad) cuda::linear_backward_weight(B, b.dxb, S.attn, L.o->grad, N, H, qdim);
  cuda::linear_backward_input(B, b.dxb, L.o->compute, s.dattn, OutType::bf16, N, H, qdim);
  cuda::attention_backward(S.q, S.k, S.v, S.attn, s.dattn, S.lse, s.dq, s.dk, s.dv, s.attention,
                           attention_shape(c, sb), st);
  cuda::rope_backward(s.dq, N, c.num_heads, int(D), sb.positions, *sb.rope, st);
  cuda::rope_backward(s.dk, N, c.num_kv_heads, int(D), sb.positions, *sb.rope, st);
  if (L.q_bias && L.q_bias->grad) cuda::bias_backward(s.dq, N, qdim, L.q_bias->grad, s.bias, st);
  if (L.k_bias && L.k_bias->grad) cuda::bias_backward(s.dk, N, kvdim, L.k_bias->grad, s.bias, st);
  if (L.v_bias && L.v_bias->grad) cuda::bias_backward(s.dv, N, kvdim, L.v_bias->grad, s.bias, st);
  if (L.q->grad) cuda::linear_backward_weight(B, s.dq, S.h, L.q->grad, N, qdim, H);
  if (L.k->grad) cuda::linear_backward_weight(B, s.dk, S.h, L.k->grad, N, kvdim, H);
  if (L.v->grad) cuda::linear_backward_weight(B, s.dv, S.h, L.v->grad, N, kvdim, H);
  cuda::linear_backward_input(B, s.dq, L.q->compute, b.dh, OutType::f32, N, qdim, H);
  cuda::linear_backward_input(B, s.dk, L.k->compute, b.dh, OutType::f32, N, kvdim, H, 1.0f);
  cuda::linear_backward_input(B, s.dv, L.v->compute, b.dh, OutType::f32, N, kvdim, H, 1.0f);
  cuda::convert_f32_to_bf16(b.dh, b.dhb, NH, st);
  cuda::rmsnorm_backward(b.dhb, S.x_in, L.attn_norm->f32, S.rstd, N, H, b.dx, L.attn_norm->grad, b.norm_scratch, st);
}

}  // namespace mf::gpu

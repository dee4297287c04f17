// Causal GQA attention on tensor cores (nvcuda::wmma bf16 16x16x16, fp32 accumulators).
//
// Design shared by the forward and both backward kernels: a block of 4 warps owns 64 rows
// (queries, or keys for dK/dV); warp w owns rows 16w..16w+15 and is the only one to touch
// them in the per-row shared buffers, so block barriers are needed only around the loads of the
// streamed tiles. The fragment element layout of wmma is unspecified, so every product that
// needs per-row or per-column treatment (masking, softmax, lse, Delta) is stored to shared
// memory as fp32, processed by plain threads, and read back as fragments.
//
// Tiles: rows x head_dim bf16 with 8 elements of padding per row (shifts consecutive rows by
// 16 bytes across banks; keeps every fragment pointer 32-byte aligned and every ldm a multiple
// of 8). Shared memory per block stays under 99 KiB so the kernels also run on sm_86/sm_89
// (whose opt-in limit is 99 KiB), not just A100/H100.
//
// Loads are plain 16-byte loads (no cp.async pipelining) and the output of the online softmax
// lives in shared memory rather than registers: this is the straightforward version, to be
// tuned (register-resident mma.sync fragments, double-buffered tiles) once it is measured.
#include <mma.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/error.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/common.cuh"

namespace mf::cuda {

namespace {

namespace wmma = nvcuda::wmma;

using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major>;
using FragBRow = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major>;
using FragBCol = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major>;
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

constexpr int kThreads = 128;  // 4 warps x 16 rows = 64 rows per block
constexpr int kRows = 64;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
// Largest opt-in dynamic shared memory of every target (sm_86/sm_89: 99 KiB; sm_80: 163 KiB).
constexpr size_t kMaxSmem = 99 * 1024;

constexpr size_t align128(size_t bytes) { return (bytes + 127) / 128 * 128; }

// Shared-memory plan of one block: `kRows` own rows (queries or keys) against streamed tiles
// of `kCols` rows of the other side. Offsets are in bytes from the dynamic shared base.
template <int D>
struct Plan {
  static_assert(D % 16 == 0 && D <= 128, "head_dim must be a multiple of 16, at most 128");
  // Longer heads stream shorter tiles so the block fits in 99 KiB.
  static constexpr int kCols = D <= 64 ? 64 : 32;
  static constexpr int kLdh = D + 8;      // bf16 tile rows (q, k, v, dout)
  static constexpr int kLds = kCols + 4;  // fp32 score rows
  static constexpr int kLdp = kCols + 8;  // bf16 probability rows
  static constexpr int kLdo = D + 4;      // fp32 output rows (forward)
  static constexpr size_t own_tile = align128(size_t(kRows) * kLdh * 2);
  static constexpr size_t col_tile = align128(size_t(kCols) * kLdh * 2);
  static constexpr size_t scores = align128(size_t(kRows) * kLds * 4);
  static constexpr size_t probs = align128(size_t(kRows) * kLdp * 2);
  static constexpr size_t row_floats = align128(size_t(kRows) * 4);
  static constexpr size_t col_floats = align128(size_t(kCols) * 4);

  // Forward: Q (own), K, V (streamed), S, P, O (fp32), 1/l per row.
  struct Fwd {
    static constexpr size_t q = 0, k = q + own_tile, v = k + col_tile, s = v + col_tile, p = s + scores,
                            o = p + probs, inv = o + align128(size_t(kRows) * kLdo * 4), total = inv + row_floats;
  };
  // dK/dV: K, V (own keys), Q, dO (streamed queries), S^T, dP^T (fp32), P^T, dS^T (bf16),
  // lse and Delta of the streamed queries.
  struct Dkdv {
    static constexpr size_t k = 0, v = k + own_tile, q = v + own_tile, dout = q + col_tile, s = dout + col_tile,
                            dp = s + scores, p = dp + scores, ds = p + probs, lse = ds + probs,
                            delta = lse + col_floats, total = delta + col_floats;
  };
  // dQ: Q, dO (own queries), K, V (streamed keys), S, dP (fp32), dS (bf16), lse and Delta of
  // the own queries.
  struct Dq {
    static constexpr size_t q = 0, dout = q + own_tile, k = dout + own_tile, v = k + col_tile, s = v + col_tile,
                            dp = s + scores, ds = dp + scores, lse = ds + probs, delta = lse + row_floats,
                            total = delta + row_floats;
  };
  static_assert(Fwd::total <= kMaxSmem && Dkdv::total <= kMaxSmem && Dq::total <= kMaxSmem,
                "attention tiles exceed 99 KiB of shared memory");
};

// Copies `rows` rows of D bf16 (global row i at src + i * stride) into a padded shared tile;
// rows from `valid` on are zero so that padding can never inject NaN/Inf into a product.
template <int D>
__device__ __forceinline__ void load_tile(bf16* dst, int ld, const bf16* src, int64_t stride, int rows, int valid) {
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  for (int idx = int(threadIdx.x); idx < rows * kChunks; idx += kThreads) {
    const int r = idx / kChunks, c = idx % kChunks;
    uint4 val = make_uint4(0u, 0u, 0u, 0u);
    if (r < valid) val = *reinterpret_cast<const uint4*>(src + r * stride + c * 8);
    *reinterpret_cast<uint4*>(dst + r * ld + c * 8) = val;
  }
}

// acc[16 x 16*N] (fp32, stored to `out`) = A[16 x K] * B^T where B is stored row-major as
// [16*N x K] (i.e. A times the transpose of a row tile): Q K^T, dO V^T, K Q^T, V dO^T.
template <int K, int N>
__device__ __forceinline__ void mma_abt(const bf16* a, int lda, const bf16* b, int ldb, float* out, int ldo) {
#pragma unroll
  for (int n = 0; n < N; ++n) {
    FragC acc;
    wmma::fill_fragment(acc, 0.f);
#pragma unroll
    for (int kk = 0; kk < K / 16; ++kk) {
      FragA fa;
      FragBCol fb;
      wmma::load_matrix_sync(fa, a + kk * 16, lda);
      wmma::load_matrix_sync(fb, b + n * 16 * ldb + kk * 16, ldb);
      wmma::mma_sync(acc, fa, fb, acc);
    }
    wmma::store_matrix_sync(out + n * 16, acc, ldo, wmma::mem_row_major);
  }
}

// acc[n] += A[16 x K] * B[K x 16n..16n+15] with B row-major [K x 16*N]: P V, P^T dO, dS K, ...
template <int K, int N>
__device__ __forceinline__ void mma_ab_acc(FragC (&acc)[N], const bf16* a, int lda, const bf16* b, int ldb) {
#pragma unroll
  for (int n = 0; n < N; ++n) {
#pragma unroll
    for (int kk = 0; kk < K / 16; ++kk) {
      FragA fa;
      FragBRow fb;
      wmma::load_matrix_sync(fa, a + kk * 16, lda);
      wmma::load_matrix_sync(fb, b + kk * 16 * ldb + n * 16, ldb);
      wmma::mma_sync(acc[n], fa, fb, acc[n]);
    }
  }
}

// Writes a warp's 16 x D fp32 accumulators (times `mul`) as bf16 rows: row r goes to
// dst + r * stride unless r >= valid. `stage` is 16 x 16 floats (ld `ld`) of the warp's own
// shared memory, used because the fragment's element layout is unspecified.
template <int D>
__device__ __forceinline__ void store_rows(const FragC (&acc)[D / 16], float* stage, int ld, bf16* dst, int64_t stride,
                                           int valid, float mul) {
  const int lane = int(threadIdx.x) & 31;
#pragma unroll
  for (int n = 0; n < D / 16; ++n) {
    wmma::store_matrix_sync(stage, acc[n], ld, wmma::mem_row_major);
    __syncwarp();
    for (int idx = lane; idx < 256; idx += 32) {
      const int r = idx >> 4, c = idx & 15;
      if (r < valid) dst[r * stride + n * 16 + c] = __float2bfloat16_rn(stage[r * ld + c] * mul);
    }
    __syncwarp();
  }
}

// ---------------------------------------------------------------------------------------------
// Forward

struct FwdParams {
  const bf16* q;
  const bf16* k;
  const bf16* v;
  bf16* out;
  float* lse;           // [batch, n_heads, T], or null
  const int32_t* past;  // [batch] cached positions before query 0, or null (none)
  int T;                // queries per sequence
  int kv_cap;           // key positions per sequence in k/v (T without a cache)
  int n_heads, n_kv_heads, group;
  float scale_log2;  // scale * log2(e): the softmax runs in base 2 (exp2f)
};

// One block per (64-query tile, head, sequence). Each warp keeps, for its 16 queries, the
// running max m and sum l of the online softmax in registers (two lanes per query, holding the
// same values) and the unnormalised output O in shared memory.
template <int D>
__global__ void __launch_bounds__(kThreads) attention_fwd_kernel(FwdParams p) {
  using P = Plan<D>;
  using L = typename P::Fwd;
  constexpr int kCols = P::kCols, kLdh = P::kLdh, kLds = P::kLds, kLdp = P::kLdp, kLdo = P::kLdo;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* q_s = reinterpret_cast<bf16*>(smem + L::q);
  bf16* k_s = reinterpret_cast<bf16*>(smem + L::k);
  bf16* v_s = reinterpret_cast<bf16*>(smem + L::v);
  float* s_s = reinterpret_cast<float*>(smem + L::s);
  bf16* p_s = reinterpret_cast<bf16*>(smem + L::p);
  float* o_s = reinterpret_cast<float*>(smem + L::o);
  float* inv_s = reinterpret_cast<float*>(smem + L::inv);

  const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  // Later query tiles see more keys: they are scheduled first so the long blocks do not trail.
  const int q0 = (int(gridDim.x) - 1 - int(blockIdx.x)) * kRows;
  const int h = int(blockIdx.y), b = int(blockIdx.z), g = h / p.group;
  const int past = p.past ? min(max(p.past[b], 0), p.kv_cap) : 0;
  const int kv_len = int(min(int64_t(past) + p.T, int64_t(p.kv_cap)));  // readable key positions
  const int q_rows = min(kRows, p.T - q0);
  // Keys the tile's last query sees (never beyond the readable ones).
  const int kv_end = int(min(int64_t(past) + q0 + q_rows, int64_t(kv_len)));

  const int64_t q_stride = int64_t(p.n_heads) * D, kv_stride = int64_t(p.n_kv_heads) * D;
  const bf16* q_base = p.q + int64_t(b) * p.T * q_stride + int64_t(h) * D;
  const bf16* k_base = p.k + int64_t(b) * p.kv_cap * kv_stride + int64_t(g) * D;
  const bf16* v_base = p.v + int64_t(b) * p.kv_cap * kv_stride + int64_t(g) * D;

  load_tile<D>(q_s, kLdh, q_base + int64_t(q0) * q_stride, q_stride, kRows, q_rows);
  for (int idx = tid; idx < kRows * kLdo; idx += kThreads) o_s[idx] = 0.f;

  // This lane's query row: lanes 2i and 2i+1 share row i of the warp, each taking every other
  // column of the score tile.
  const int r0 = warp * 16;
  const int row = r0 + (lane >> 1), half = lane & 1;
  const int t = q0 + row;
  const bool row_valid = t < p.T;
  const int pos = past + t;  // absolute position: sees keys 0..pos
  float m = -INFINITY, l = 0.f;
  // The warp has work while it owns a real query and the tile's first key is visible to its
  // last query (padding rows included in that bound, which only makes it looser).
  const int warp_t = q0 + r0;
  const int warp_last_pos = past + warp_t + 15;

  for (int k0 = 0; k0 < kv_end; k0 += kCols) {
    __syncthreads();  // every warp is done with the previous K/V tile (and Q/O init is done)
    const int valid = min(kCols, kv_len - k0);
    load_tile<D>(k_s, kLdh, k_base + int64_t(k0) * kv_stride, kv_stride, kCols, valid);
    load_tile<D>(v_s, kLdh, v_base + int64_t(k0) * kv_stride, kv_stride, kCols, valid);
    __syncthreads();
    if (warp_t >= p.T || k0 > warp_last_pos) continue;  // warp-uniform; no barrier until the loop top

    // S = Q K^T for the warp's 16 rows.
    mma_abt<D, kCols / 16>(q_s + r0 * kLdh, kLdh, k_s, kLdh, s_s + r0 * kLds, kLds);
    __syncwarp();

    // Online softmax over this tile, masked causally; masked entries are -inf and give p = 0.
    float sv[kCols / 2];
    float tile_max = -INFINITY;
#pragma unroll
    for (int j = 0; j < kCols / 2; ++j) {
      const int c = half + 2 * j, kp = k0 + c;
      const bool seen = row_valid && kp <= pos && kp < kv_len;
      sv[j] = seen ? s_s[row * kLds + c] * p.scale_log2 : -INFINITY;
      tile_max = fmaxf(tile_max, sv[j]);
    }
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
    const float m_new = fmaxf(m, tile_max);
    // A row that has seen nothing yet keeps m = -inf; subtracting 0 instead avoids inf - inf.
    const float m_use = m_new == -INFINITY ? 0.f : m_new;
    const float alpha = exp2f(m - m_use);  // 0 when m was -inf
    float row_sum = 0.f;
#pragma unroll
    for (int j = 0; j < kCols / 2; ++j) {
      const float e = exp2f(sv[j] - m_use);
      row_sum += e;
      p_s[row * kLdp + half + 2 * j] = __float2bfloat16_rn(e);
    }
    row_sum += __shfl_xor_sync(0xffffffffu, row_sum, 1);
    l = l * alpha + row_sum;
    m = m_new;
#pragma unroll
    for (int j = 0; j < D / 2; ++j) o_s[row * kLdo + half + 2 * j] *= alpha;
    __syncwarp();

    // O += P V, accumulated through the shared fp32 copy of O.
#pragma unroll
    for (int n = 0; n < D / 16; ++n) {
      FragC acc;
      wmma::load_matrix_sync(acc, o_s + r0 * kLdo + n * 16, kLdo, wmma::mem_row_major);
#pragma unroll
      for (int kk = 0; kk < kCols / 16; ++kk) {
        FragA fa;
        FragBRow fb;
        wmma::load_matrix_sync(fa, p_s + r0 * kLdp + kk * 16, kLdp);
        wmma::load_matrix_sync(fb, v_s + kk * 16 * kLdh + n * 16, kLdh);
        wmma::mma_sync(acc, fa, fb, acc);
      }
      wmma::store_matrix_sync(o_s + r0 * kLdo + n * 16, acc, kLdo, wmma::mem_row_major);
    }
    __syncwarp();
  }

  // Epilogue, per warp on its own rows: O / l as bf16, and the log-sum-exp in natural units.
  if (half == 0) inv_s[row] = l > 0.f ? 1.f / l : 0.f;
  if (half == 0 && row_valid && p.lse)
    p.lse[(int64_t(b) * p.n_heads + h) * p.T + t] = l > 0.f ? (m + log2f(l)) * kLn2 : -INFINITY;
  __syncwarp();
  bf16* out_base = p.out + int64_t(b) * p.T * q_stride + int64_t(h) * D;
  for (int idx = lane; idx < 16 * (D / 2); idx += 32) {
    const int r = r0 + idx / (D / 2), c = 2 * (idx % (D / 2));
    if (q0 + r >= p.T) continue;
    const float inv = inv_s[r];
    *reinterpret_cast<__nv_bfloat162*>(out_base + int64_t(q0 + r) * q_stride + c) =
        __floats2bfloat162_rn(o_s[r * kLdo + c] * inv, o_s[r * kLdo + c + 1] * inv);
  }
}

// ---------------------------------------------------------------------------------------------
// Backward (FlashAttention-2): dS = P * (dP - Delta), Delta_t = sum_d dout_t * out_t,
// dV = P^T dO, dK = scale * dS^T Q, dQ = scale * dS K, with P = exp(scale * Q K^T - lse).

struct BwdParams {
  const bf16* q;
  const bf16* k;
  const bf16* v;
  const bf16* dout;
  const float* lse;    // [batch, n_heads, T]
  const float* delta;  // [batch, n_heads, T]
  bf16* dq;
  bf16* dk;
  bf16* dv;
  int T, n_heads, n_kv_heads, group;
  float scale, scale_log2;
};

// One warp per (sequence, query, head) row, in memory order of out.
__global__ void __launch_bounds__(256) attention_delta_kernel(const bf16* out, const bf16* dout, float* delta,
                                                              int64_t rows, int T, int n_heads, int head_dim) {
  const int lane = int(threadIdx.x) & 31;
  const int64_t r = int64_t(blockIdx.x) * 8 + (threadIdx.x >> 5);
  if (r >= rows) return;  // whole warp; the kernel has no block barrier
  const auto* o2 = reinterpret_cast<const __nv_bfloat162*>(out + r * head_dim);
  const auto* d2 = reinterpret_cast<const __nv_bfloat162*>(dout + r * head_dim);
  float acc = 0.f;
  for (int i = lane; i < head_dim / 2; i += 32) {
    const float2 o = __bfloat1622float2(o2[i]), d = __bfloat1622float2(d2[i]);
    acc += o.x * d.x + o.y * d.y;
  }
  acc = warp_sum(acc);
  if (lane == 0) {
    const int h = int(r % n_heads);
    const int64_t bt = r / n_heads;  // b * T + t
    const int64_t b = bt / T, t = bt % T;
    delta[(b * n_heads + h) * T + t] = acc;
  }
}

// dK, dV: one block per (64-key tile, kv head, sequence). The block walks every query head of
// the group and every query tile that can see its keys; warp w accumulates dK and dV of keys
// 16w..16w+15 in fragments (registers), so each element is summed by one owner, in order.
template <int D>
__global__ void __launch_bounds__(kThreads) attention_dkdv_kernel(BwdParams p) {
  using P = Plan<D>;
  using L = typename P::Dkdv;
  constexpr int kCols = P::kCols, kLdh = P::kLdh, kLds = P::kLds, kLdp = P::kLdp;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* k_s = reinterpret_cast<bf16*>(smem + L::k);
  bf16* v_s = reinterpret_cast<bf16*>(smem + L::v);
  bf16* q_s = reinterpret_cast<bf16*>(smem + L::q);
  bf16* do_s = reinterpret_cast<bf16*>(smem + L::dout);
  float* s_s = reinterpret_cast<float*>(smem + L::s);
  float* dp_s = reinterpret_cast<float*>(smem + L::dp);
  bf16* pt_s = reinterpret_cast<bf16*>(smem + L::p);
  bf16* dst_s = reinterpret_cast<bf16*>(smem + L::ds);
  float* lse_s = reinterpret_cast<float*>(smem + L::lse);
  float* delta_s = reinterpret_cast<float*>(smem + L::delta);

  const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int k0 = int(blockIdx.x) * kRows;
  const int g = int(blockIdx.y), b = int(blockIdx.z);
  const int T = p.T;
  const int k_rows = min(kRows, T - k0);
  const int64_t q_stride = int64_t(p.n_heads) * D, kv_stride = int64_t(p.n_kv_heads) * D;
  const int64_t kv_off = (int64_t(b) * T + k0) * kv_stride + int64_t(g) * D;
  load_tile<D>(k_s, kLdh, p.k + kv_off, kv_stride, kRows, k_rows);
  load_tile<D>(v_s, kLdh, p.v + kv_off, kv_stride, kRows, k_rows);

  FragC dk[D / 16], dv[D / 16];
#pragma unroll
  for (int n = 0; n < D / 16; ++n) {
    wmma::fill_fragment(dk[n], 0.f);
    wmma::fill_fragment(dv[n], 0.f);
  }
  const int r0 = warp * 16;
  const int warp_k = k0 + r0;  // first key of the warp
  // Queries before k0 see none of the block's keys (causal): start at the tile holding k0.
  const int qt_begin = k0 / kCols * kCols;

  for (int j = 0; j < p.group; ++j) {
    const int h = g * p.group + j;
    const bf16* q_base = p.q + int64_t(b) * T * q_stride + int64_t(h) * D;
    const bf16* do_base = p.dout + int64_t(b) * T * q_stride + int64_t(h) * D;
    const float* lse_base = p.lse + (int64_t(b) * p.n_heads + h) * T;
    const float* delta_base = p.delta + (int64_t(b) * p.n_heads + h) * T;
    for (int qt0 = qt_begin; qt0 < T; qt0 += kCols) {
      __syncthreads();  // previous Q/dO tile consumed; on the first pass, the K/V loads done
      const int q_rows = min(kCols, T - qt0);
      load_tile<D>(q_s, kLdh, q_base + int64_t(qt0) * q_stride, q_stride, kCols, q_rows);
      load_tile<D>(do_s, kLdh, do_base + int64_t(qt0) * q_stride, q_stride, kCols, q_rows);
      for (int c = tid; c < kCols; c += kThreads) {
        lse_s[c] = c < q_rows ? lse_base[qt0 + c] * kLog2e : 0.f;
        delta_s[c] = c < q_rows ? delta_base[qt0 + c] : 0.f;
      }
      __syncthreads();
      // Nothing to do when the warp's keys are padding or all later than the tile's queries.
      if (warp_k >= T || warp_k > qt0 + kCols - 1) continue;

      // S^T = K Q^T and dP^T = V dO^T for the warp's 16 keys against the tile's queries.
      mma_abt<D, kCols / 16>(k_s + r0 * kLdh, kLdh, q_s, kLdh, s_s + r0 * kLds, kLds);
      mma_abt<D, kCols / 16>(v_s + r0 * kLdh, kLdh, do_s, kLdh, dp_s + r0 * kLds, kLds);
      __syncwarp();
      for (int idx = lane; idx < 16 * kCols; idx += 32) {
        const int r = r0 + idx / kCols, c = idx % kCols;
        const int kp = k0 + r, tq = qt0 + c;
        const bool seen = tq < T && kp <= tq;
        const float pr = seen ? exp2f(s_s[r * kLds + c] * p.scale_log2 - lse_s[c]) : 0.f;
        const float ds = pr * (dp_s[r * kLds + c] - delta_s[c]);
        pt_s[r * kLdp + c] = __float2bfloat16_rn(pr);
        dst_s[r * kLdp + c] = __float2bfloat16_rn(ds);
      }
      __syncwarp();
      mma_ab_acc<kCols, D / 16>(dv, pt_s + r0 * kLdp, kLdp, do_s, kLdh);
      mma_ab_acc<kCols, D / 16>(dk, dst_s + r0 * kLdp, kLdp, q_s, kLdh);
    }
  }

  // Staging through the warp's own score rows: the last elementwise pass that read them ended
  // with __syncwarp, and no other warp touches these rows.
  if (warp_k < T) {
    const int valid = T - warp_k;
    bf16* dk_dst = p.dk + (int64_t(b) * T + warp_k) * kv_stride + int64_t(g) * D;
    bf16* dv_dst = p.dv + (int64_t(b) * T + warp_k) * kv_stride + int64_t(g) * D;
    store_rows<D>(dk, s_s + r0 * kLds, kLds, dk_dst, kv_stride, valid, p.scale);
    store_rows<D>(dv, s_s + r0 * kLds, kLds, dv_dst, kv_stride, valid, 1.f);
  }
}

// dQ: one block per (64-query tile, head, sequence), streaming the key tiles its queries see;
// warp w accumulates dQ of queries 16w..16w+15 in fragments.
template <int D>
__global__ void __launch_bounds__(kThreads) attention_dq_kernel(BwdParams p) {
  using P = Plan<D>;
  using L = typename P::Dq;
  constexpr int kCols = P::kCols, kLdh = P::kLdh, kLds = P::kLds, kLdp = P::kLdp;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* q_s = reinterpret_cast<bf16*>(smem + L::q);
  bf16* do_s = reinterpret_cast<bf16*>(smem + L::dout);
  bf16* k_s = reinterpret_cast<bf16*>(smem + L::k);
  bf16* v_s = reinterpret_cast<bf16*>(smem + L::v);
  float* s_s = reinterpret_cast<float*>(smem + L::s);
  float* dp_s = reinterpret_cast<float*>(smem + L::dp);
  bf16* ds_s = reinterpret_cast<bf16*>(smem + L::ds);
  float* lse_s = reinterpret_cast<float*>(smem + L::lse);
  float* delta_s = reinterpret_cast<float*>(smem + L::delta);

  const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int q0 = (int(gridDim.x) - 1 - int(blockIdx.x)) * kRows;  // long blocks first
  const int h = int(blockIdx.y), b = int(blockIdx.z), g = h / p.group;
  const int T = p.T;
  const int q_rows = min(kRows, T - q0);
  const int64_t q_stride = int64_t(p.n_heads) * D, kv_stride = int64_t(p.n_kv_heads) * D;
  const int64_t q_off = (int64_t(b) * T + q0) * q_stride + int64_t(h) * D;
  load_tile<D>(q_s, kLdh, p.q + q_off, q_stride, kRows, q_rows);
  load_tile<D>(do_s, kLdh, p.dout + q_off, q_stride, kRows, q_rows);
  const int64_t row_off = (int64_t(b) * p.n_heads + h) * T + q0;
  for (int r = tid; r < kRows; r += kThreads) {
    lse_s[r] = r < q_rows ? p.lse[row_off + r] * kLog2e : 0.f;
    delta_s[r] = r < q_rows ? p.delta[row_off + r] : 0.f;
  }

  FragC dq[D / 16];
#pragma unroll
  for (int n = 0; n < D / 16; ++n) wmma::fill_fragment(dq[n], 0.f);
  const int r0 = warp * 16;
  const int warp_t = q0 + r0;
  const bf16* k_base = p.k + int64_t(b) * T * kv_stride + int64_t(g) * D;
  const bf16* v_base = p.v + int64_t(b) * T * kv_stride + int64_t(g) * D;
  const int kv_end = q0 + q_rows;  // keys the tile's last query sees

  for (int k0 = 0; k0 < kv_end; k0 += kCols) {
    __syncthreads();  // previous K/V tile consumed; on the first pass, Q/dO/lse/Delta loads done
    const int valid = min(kCols, T - k0);
    load_tile<D>(k_s, kLdh, k_base + int64_t(k0) * kv_stride, kv_stride, kCols, valid);
    load_tile<D>(v_s, kLdh, v_base + int64_t(k0) * kv_stride, kv_stride, kCols, valid);
    __syncthreads();
    if (warp_t >= T || k0 > warp_t + 15) continue;  // padding rows, or keys after all of them

    mma_abt<D, kCols / 16>(q_s + r0 * kLdh, kLdh, k_s, kLdh, s_s + r0 * kLds, kLds);
    mma_abt<D, kCols / 16>(do_s + r0 * kLdh, kLdh, v_s, kLdh, dp_s + r0 * kLds, kLds);
    __syncwarp();
    for (int idx = lane; idx < 16 * kCols; idx += 32) {
      const int r = r0 + idx / kCols, c = idx % kCols;
      const int tq = q0 + r, kp = k0 + c;
      const bool seen = tq < T && kp <= tq;
      const float pr = seen ? exp2f(s_s[r * kLds + c] * p.scale_log2 - lse_s[r]) : 0.f;
      ds_s[r * kLdp + c] = __float2bfloat16_rn(pr * (dp_s[r * kLds + c] - delta_s[r]));
    }
    __syncwarp();
    mma_ab_acc<kCols, D / 16>(dq, ds_s + r0 * kLdp, kLdp, k_s, kLdh);
  }

  if (warp_t < T) {
    bf16* dst = p.dq + (int64_t(b) * T + warp_t) * q_stride + int64_t(h) * D;
    store_rows<D>(dq, s_s + r0 * kLds, kLds, dst, q_stride, T - warp_t, p.scale);
  }
}

// ---------------------------------------------------------------------------------------------
// Decode (flash-decoding): one block per (key chunk, head, sequence) computes the chunk's
// softmax-weighted sum of values; with more than one chunk a second kernel merges the chunks
// through their (max, sum) pairs.

constexpr int kDecodeChunk = 256;

int decode_splits(int capacity) { return (capacity + kDecodeChunk - 1) / kDecodeChunk; }

struct DecodeParams {
  const bf16* q;
  const bf16* k;
  const bf16* v;
  const int32_t* lengths;
  bf16* out;
  float* part_o;  // [batch, n_heads, splits, D] unnormalised
  float* part_m;  // [batch, n_heads, splits] running max (base 2)
  float* part_l;  // [batch, n_heads, splits] sum of exp2(s - m)
  int capacity, n_heads, n_kv_heads, group, splits;
  float scale_log2;
};

template <int D>
__global__ void __launch_bounds__(kThreads) attention_decode_kernel(DecodeParams p) {
  constexpr int kPairs = D / 2;              // bf16 pairs per row
  constexpr int kSub = kThreads / kPairs;    // key subsets summed in parallel in the PV pass
  __shared__ float q_s[D];
  __shared__ float prob_s[kDecodeChunk];
  __shared__ float red_s[kSub * D];
  __shared__ float tmp_s[32];

  const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int split = int(blockIdx.x), h = int(blockIdx.y), b = int(blockIdx.z), g = h / p.group;
  const int len = min(max(p.lengths[b], 0), p.capacity);
  const int start = split * kDecodeChunk;
  const int n = min(kDecodeChunk, len - start);
  const int64_t head = int64_t(b) * p.n_heads + h;
  const bool direct = p.splits == 1;
  if (n <= 0) {  // block-uniform: a chunk past the sequence's end (or an empty sequence)
    for (int d = tid; d < D; d += kThreads) {
      if (direct)
        p.out[head * D + d] = __float2bfloat16_rn(0.f);
      else
        p.part_o[(head * p.splits + split) * D + d] = 0.f;
    }
    if (!direct && tid == 0) {
      p.part_m[head * p.splits + split] = -INFINITY;
      p.part_l[head * p.splits + split] = 0.f;
    }
    return;
  }

  for (int d = tid; d < D; d += kThreads) q_s[d] = __bfloat162float(p.q[head * D + d]) * p.scale_log2;
  __syncthreads();

  // Scores: one warp per key, lanes across head_dim in bf16 pairs (a coalesced row read).
  const int64_t kv_stride = int64_t(p.n_kv_heads) * D;
  const bf16* k_base = p.k + (int64_t(b) * p.capacity + start) * kv_stride + int64_t(g) * D;
  const bf16* v_base = p.v + (int64_t(b) * p.capacity + start) * kv_stride + int64_t(g) * D;
  for (int j = warp; j < n; j += kThreads / 32) {
    const auto* k2 = reinterpret_cast<const __nv_bfloat162*>(k_base + j * kv_stride);
    float acc = 0.f;
    for (int i = lane; i < kPairs; i += 32) {
      const float2 kv = __bfloat1622float2(k2[i]);
      acc += q_s[2 * i] * kv.x + q_s[2 * i + 1] * kv.y;
    }
    acc = warp_sum(acc);
    if (lane == 0) prob_s[j] = acc;
  }
  __syncthreads();

  float local = -INFINITY;
  for (int j = tid; j < n; j += kThreads) local = fmaxf(local, prob_s[j]);
  const float m = block_max(local, tmp_s);  // finite: n >= 1 real scores
  float sum = 0.f;
  for (int j = tid; j < n; j += kThreads) {
    const float e = exp2f(prob_s[j] - m);
    prob_s[j] = e;
    sum += e;
  }
  const float l = block_sum(sum, tmp_s);  // its barriers also publish prob_s

  // Weighted values: thread (sub, pair) sums keys sub, sub + kSub, ... for one bf16 pair.
  const int pair = tid % kPairs, sub = tid / kPairs;
  if (sub < kSub) {
    float ax = 0.f, ay = 0.f;
    for (int j = sub; j < n; j += kSub) {
      const float w = prob_s[j];
      const float2 vv = __bfloat1622float2(reinterpret_cast<const __nv_bfloat162*>(v_base + j * kv_stride)[pair]);
      ax += w * vv.x;
      ay += w * vv.y;
    }
    red_s[sub * D + 2 * pair] = ax;
    red_s[sub * D + 2 * pair + 1] = ay;
  }
  __syncthreads();
  if (tid < kPairs) {
    float ox = 0.f, oy = 0.f;
    for (int s = 0; s < kSub; ++s) {
      ox += red_s[s * D + 2 * tid];
      oy += red_s[s * D + 2 * tid + 1];
    }
    if (direct) {
      const float inv = 1.f / l;
      reinterpret_cast<__nv_bfloat162*>(p.out + head * D)[tid] = __floats2bfloat162_rn(ox * inv, oy * inv);
    } else {
      float* po = p.part_o + (head * p.splits + split) * D;
      po[2 * tid] = ox;
      po[2 * tid + 1] = oy;
    }
  }
  if (!direct && tid == 0) {
    p.part_m[head * p.splits + split] = m;
    p.part_l[head * p.splits + split] = l;
  }
}

// One block of D threads per (head, sequence): out = sum_s 2^(m_s - M) o_s / sum_s 2^(m_s - M) l_s.
__global__ void attention_decode_combine_kernel(DecodeParams p, int head_dim) {
  const int d = int(threadIdx.x);
  const int64_t head = int64_t(blockIdx.y) * p.n_heads + blockIdx.x;
  const float* m = p.part_m + head * p.splits;
  const float* l = p.part_l + head * p.splits;
  float big = -INFINITY;
  for (int s = 0; s < p.splits; ++s) big = fmaxf(big, m[s]);
  float den = 0.f, num = 0.f;
  if (big != -INFINITY) {  // -inf only for an empty sequence: its output is 0
    for (int s = 0; s < p.splits; ++s) {
      const float w = exp2f(m[s] - big);  // empty chunks: exp2(-inf) = 0
      den += w * l[s];
      num += w * p.part_o[(head * p.splits + s) * head_dim + d];
    }
  }
  p.out[head * head_dim + d] = __float2bfloat16_rn(den > 0.f ? num / den : 0.f);
}

// ---------------------------------------------------------------------------------------------
// Host side

template <class F>
void dispatch_head_dim(int head_dim, const char* op, F&& f) {
  switch (head_dim) {
    case 32: f(std::integral_constant<int, 32>{}); break;
    case 64: f(std::integral_constant<int, 64>{}); break;
    case 96: f(std::integral_constant<int, 96>{}); break;
    case 128: f(std::integral_constant<int, 128>{}); break;
    default: fail(op, ": head_dim ", head_dim, " is not supported (32, 64, 96 or 128)");
  }
}

void check_shape(const char* op, int batch, int T, int n_heads, int n_kv_heads, int head_dim) {
  MF_CHECK(batch >= 0 && T >= 0, op, ": negative size (batch ", batch, ", T ", T, ")");
  MF_CHECK(n_heads > 0 && n_kv_heads > 0 && n_heads % n_kv_heads == 0, op, ": n_heads ", n_heads,
           " is not a positive multiple of n_kv_heads ", n_kv_heads);
  MF_CHECK(head_dim == 32 || head_dim == 64 || head_dim == 96 || head_dim == 128, op, ": head_dim ", head_dim,
           " is not supported (32, 64, 96 or 128)");
  // Heads and sequences are grid.y and grid.z.
  MF_CHECK(n_heads <= 65535 && batch <= 65535, op, ": n_heads ", n_heads, " or batch ", batch,
           " exceeds the grid limit 65535");
}

void check_aligned(const char* op, const char* name, const void* ptr) {
  MF_CHECK(ptr != nullptr, op, ": ", name, " is null");
  MF_CHECK(reinterpret_cast<uintptr_t>(ptr) % 16 == 0, op, ": ", name,
           " must be 16-byte aligned (tiles are loaded 8 bf16 at a time)");
}

template <class Kernel, class Params>
void launch_tiled(Kernel kernel, size_t smem, dim3 grid, const Params& params, cudaStream_t stream, const char* op) {
  // Above 48 KiB dynamic shared memory must be opted into, per kernel (no synchronisation).
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)), op);
  kernel<<<grid, kThreads, smem, stream>>>(params);
  check_launch(op);
}

void forward_common(const char* op, const FwdParams& params, int batch, int head_dim, cudaStream_t stream) {
  dispatch_head_dim(head_dim, op, [&](auto tag) {
    constexpr int D = decltype(tag)::value;
    const dim3 grid(blocks_for(params.T, kRows), unsigned(params.n_heads), unsigned(batch));
    launch_tiled(attention_fwd_kernel<D>, Plan<D>::Fwd::total, grid, params, stream, op);
  });
}

}  // namespace

void attention_forward(const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse, const AttentionShape& s,
                       cudaStream_t stream) {
  const int batch = s.batch, T = s.T, n_heads = s.n_heads, n_kv_heads = s.n_kv_heads, head_dim = s.head_dim;
  const float scale = s.scale;
  constexpr const char* op = "attention_forward";
  check_shape(op, batch, T, n_heads, n_kv_heads, head_dim);
  if (batch == 0 || T == 0) return;
  check_aligned(op, "q", q);
  check_aligned(op, "k", k);
  check_aligned(op, "v", v);
  check_aligned(op, "out", out);
  FwdParams params{q, k, v, out, lse, nullptr, T, T, n_heads, n_kv_heads, n_heads / n_kv_heads, scale * kLog2e};
  forward_common(op, params, batch, head_dim, stream);
}

void attention_prefill_cached(const bf16* q, const bf16* k_cache, const bf16* v_cache, const int32_t* past,
                              bf16* out, const AttentionShape& s, int capacity, cudaStream_t stream) {
  const int batch = s.batch, T = s.T, n_heads = s.n_heads, n_kv_heads = s.n_kv_heads, head_dim = s.head_dim;
  const float scale = s.scale;
  constexpr const char* op = "attention_prefill_cached";
  check_shape(op, batch, T, n_heads, n_kv_heads, head_dim);
  MF_CHECK(capacity >= T, op, ": cache capacity ", capacity, " cannot hold T = ", T, " new tokens");
  if (batch == 0 || T == 0) return;
  check_aligned(op, "q", q);
  check_aligned(op, "k_cache", k_cache);
  check_aligned(op, "v_cache", v_cache);
  check_aligned(op, "out", out);
  MF_CHECK(past != nullptr, op, ": past is null");
  FwdParams params{q, k_cache, v_cache, out, nullptr, past, T, capacity, n_heads, n_kv_heads, n_heads / n_kv_heads,
                   scale * kLog2e};
  forward_common(op, params, batch, head_dim, stream);
}

size_t attention_backward_scratch_bytes(const AttentionShape& s) {
  return size_t(std::max(s.batch, 0)) * size_t(std::max(s.T, 0)) * size_t(std::max(s.n_heads, 0)) * sizeof(float);
}

void attention_backward(const bf16* q, const bf16* k, const bf16* v, const bf16* out, const bf16* dout,
                        const float* lse, bf16* dq, bf16* dk, bf16* dv, float* scratch, const AttentionShape& s,
                        cudaStream_t stream) {
  const int batch = s.batch, T = s.T, n_heads = s.n_heads, n_kv_heads = s.n_kv_heads, head_dim = s.head_dim;
  const float scale = s.scale;
  constexpr const char* op = "attention_backward";
  check_shape(op, batch, T, n_heads, n_kv_heads, head_dim);
  if (batch == 0 || T == 0) return;
  check_aligned(op, "q", q);
  check_aligned(op, "k", k);
  check_aligned(op, "v", v);
  check_aligned(op, "out", out);
  check_aligned(op, "dout", dout);
  check_aligned(op, "dq", dq);
  check_aligned(op, "dk", dk);
  check_aligned(op, "dv", dv);
  MF_CHECK(lse != nullptr && scratch != nullptr, op, ": lse or scratch is null");

  const int64_t rows = int64_t(batch) * T * n_heads;
  attention_delta_kernel<<<blocks_for(rows, 8), 256, 0, stream>>>(out, dout, scratch, rows, T, n_heads, head_dim);
  check_launch("attention_backward (delta)");

  BwdParams params{q, k, v, dout, lse, scratch, dq, dk, dv, T, n_heads, n_kv_heads, n_heads / n_kv_heads,
                   scale, scale * kLog2e};
  dispatch_head_dim(head_dim, op, [&](auto tag) {
    constexpr int D = decltype(tag)::value;
    const dim3 kv_grid(blocks_for(T, kRows), unsigned(n_kv_heads), unsigned(batch));
    launch_tiled(attention_dkdv_kernel<D>, Plan<D>::Dkdv::total, kv_grid, params, stream,
                 "attention_backward (dk, dv)");
    const dim3 q_grid(blocks_for(T, kRows), unsigned(n_heads), unsigned(batch));
    launch_tiled(attention_dq_kernel<D>, Plan<D>::Dq::total, q_grid, params, stream, "attention_backward (dq)");
  });
}

size_t attention_decode_scratch_bytes(const AttentionShape& s, int capacity) {
  const int batch = s.batch, n_heads = s.n_heads, head_dim = s.head_dim;
  const int splits = decode_splits(std::max(capacity, 0));
  if (splits <= 1) return 0;
  return size_t(std::max(batch, 0)) * size_t(std::max(n_heads, 0)) * size_t(splits) *
         size_t(std::max(head_dim, 0) + 2) * sizeof(float);
}

void attention_decode(const bf16* q, const bf16* k_cache, const bf16* v_cache, const int32_t* lengths, bf16* out,
                      float* scratch, const AttentionShape& s, int capacity, cudaStream_t stream) {
  const int batch = s.batch, n_heads = s.n_heads, n_kv_heads = s.n_kv_heads, head_dim = s.head_dim;
  const float scale = s.scale;
  constexpr const char* op = "attention_decode";
  check_shape(op, batch, 1, n_heads, n_kv_heads, head_dim);
  MF_CHECK(capacity > 0, op, ": cache capacity must be positive, got ", capacity);
  if (batch == 0) return;
  check_aligned(op, "q", q);
  check_aligned(op, "k_cache", k_cache);
  check_aligned(op, "v_cache", v_cache);
  check_aligned(op, "out", out);
  MF_CHECK(lengths != nullptr, op, ": lengths is null");
  const int splits = decode_splits(capacity);
  MF_CHECK(splits == 1 || scratch != nullptr, op, ": scratch is null but ",
           attention_decode_scratch_bytes(s, capacity), " bytes are needed");
  const size_t partials = size_t(batch) * size_t(n_heads) * size_t(splits);
  DecodeParams params{q,
                      k_cache,
                      v_cache,
                      lengths,
                      out,
                      scratch,
                      splits > 1 ? scratch + partials * size_t(head_dim) : nullptr,
                      splits > 1 ? scratch + partials * size_t(head_dim + 1) : nullptr,
                      capacity,
                      n_heads,
                      n_kv_heads,
                      n_heads / n_kv_heads,
                      splits,
                      scale * kLog2e};
  dispatch_head_dim(head_dim, op, [&](auto tag) {
    constexpr int D = decltype(tag)::value;
    const dim3 grid{unsigned(splits), unsigned(n_heads), unsigned(batch)};
    attention_decode_kernel<D><<<grid, kThreads, 0, stream>>>(params);
    check_launch(op);
  });
  if (splits > 1) {
    attention_decode_combine_kernel<<<dim3(unsigned(n_heads), unsigned(batch)), unsigned(head_dim), 0, stream>>>(
        params, head_dim);
    check_launch("attention_decode (combine)");
  }
}

}  // namespace mf::cuda

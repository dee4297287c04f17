#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>

#include "core/error.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/embedding.h"

namespace mf::cuda {

namespace {

int row_threads(int64_t vectors) { return int(std::clamp<int64_t>((vectors + 31) / 32 * 32, 32, 256)); }
unsigned row_blocks(int64_t rows) { return unsigned(std::min<int64_t>(rows, int64_t(1) << 20)); }

// One block per output row (grid-stride); V table elements per access, written as fp32 in
// groups of at most 4 (16-byte stores).
template <int V, class T>
__global__ void embed_rows_kernel(const T* table, const int32_t* ids, int64_t n, int64_t H, int64_t vocab,
                                  float* x) {
  constexpr int W = V < 4 ? V : 4;
  const int64_t vectors = H / V;
  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    const int32_t id = ids[row];
    const bool valid = id >= 0 && id < vocab;
    for (int64_t j = threadIdx.x; j < vectors; j += blockDim.x) {
      Pack<T, V> src{};
      if (valid) src = load_pack<V>(table + int64_t(id) * H + j * V);
#pragma unroll
      for (int q = 0; q < V; q += W) {
        Pack<float, W> out;
#pragma unroll
        for (int k = 0; k < W; ++k) out.v[k] = valid ? to_float(src.v[q + k]) : 0.0f;
        store_pack<W>(x + row * H + j * V + q, out);
      }
    }
  }
}

template <class T>
void launch_embed(const T* table, const int32_t* ids, int64_t n, int64_t H, int64_t vocab, float* x,
                  cudaStream_t stream) {
  MF_CHECK(n >= 0 && H > 0 && vocab > 0, "embed_rows: bad shape n=", n, " H=", H, " vocab=", vocab);
  if (n == 0) return;
  constexpr int kVec = 16 / sizeof(T);  // 8 bf16 or 4 fp32 per 16-byte load
  if (H % kVec == 0 && aligned(table, 16) && aligned(x, 16))
    embed_rows_kernel<kVec><<<row_blocks(n), row_threads(H / kVec), 0, stream>>>(table, ids, n, H, vocab, x);
  else
    embed_rows_kernel<1><<<row_blocks(n), row_threads(H), 0, stream>>>(table, ids, n, H, vocab, x);
  check_launch("embed_rows");
}

// One block per distinct id (grid-stride); each thread owns V columns of the id's dtable row and
// adds the positions' gradient rows to it in ascending position order.
template <int V>
__global__ void embed_rows_backward_kernel(const int32_t* plan_ids, const int32_t* plan_offsets,
                                           const int32_t* plan_positions, int64_t unique, const float* dx,
                                           int64_t H, float* dtable) {
  const int64_t vectors = H / V;
  for (int64_t u = blockIdx.x; u < unique; u += gridDim.x) {
    const int64_t id = plan_ids[u];
    const int32_t begin = plan_offsets[u], end = plan_offsets[u + 1];
    float* row = dtable + id * H;
    for (int64_t j = threadIdx.x; j < vectors; j += blockDim.x) {
      Pack<float, V> acc = load_pack<V>(row + j * V);
      for (int32_t p = begin; p < end; ++p) {
        const Pack<float, V> g = load_pack<V>(dx + int64_t(plan_positions[p]) * H + j * V);
#pragma unroll
        for (int k = 0; k < V; ++k) acc.v[k] += g.v[k];
      }
      store_pack<V>(row + j * V, acc);
    }
  }
}

}  // namespace

void embed_rows(const bf16* table, const int32_t* ids, int64_t n, int64_t H, int64_t vocab, float* x,
                cudaStream_t stream) {
  launch_embed(table, ids, n, H, vocab, x, stream);
}

void embed_rows(const float* table, const int32_t* ids, int64_t n, int64_t H, int64_t vocab, float* x,
                cudaStream_t stream) {
  launch_embed(table, ids, n, H, vocab, x, stream);
}

EmbeddingGradPlan make_embedding_grad_plan(std::span<const int32_t> ids, int64_t vocab) {
  MF_CHECK(ids.size() < size_t(std::numeric_limits<int32_t>::max()), "make_embedding_grad_plan: ", ids.size(),
           " positions do not fit int32 offsets");
  std::vector<std::pair<int32_t, int32_t>> order(ids.size());  // (id, position)
  for (size_t i = 0; i < ids.size(); ++i) {
    MF_CHECK(ids[i] >= 0 && ids[i] < vocab, "token id ", ids[i], " at position ", i,
             " is outside the vocabulary [0, ", vocab, ")");
    order[i] = {ids[i], int32_t(i)};
  }
  std::sort(order.begin(), order.end());
  EmbeddingGradPlan plan;
  plan.positions.reserve(order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    if (i == 0 || order[i].first != order[i - 1].first) {
      plan.ids.push_back(order[i].first);
      plan.offsets.push_back(int32_t(i));
    }
    plan.positions.push_back(order[i].second);
  }
  plan.offsets.push_back(int32_t(order.size()));
  return plan;
}

void embed_rows_backward(const int32_t* plan_ids, const int32_t* plan_offsets, const int32_t* plan_positions,
                         int64_t unique, const float* dx, int64_t H, float* dtable, cudaStream_t stream) {
  MF_CHECK(unique >= 0 && H > 0, "embed_rows_backward: bad shape unique=", unique, " H=", H);
  if (unique == 0) return;
  constexpr int kVec = 4;
  if (H % kVec == 0 && aligned(dx, 16) && aligned(dtable, 16))
    embed_rows_backward_kernel<kVec><<<row_blocks(unique), row_threads(H / kVec), 0, stream>>>(
        plan_ids, plan_offsets, plan_positions, unique, dx, H, dtable);
  else
    embed_rows_backward_kernel<1><<<row_blocks(unique), row_threads(H), 0, stream>>>(
        plan_ids, plan_offsets, plan_positions, unique, dx, H, dtable);
  check_launch("embed_rows_backward");
}

}  // namespace mf::cuda

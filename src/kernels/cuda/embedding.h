// CUDA token embedding (twin of embed_tokens / embed_tokens_backward in model/blocks.h): rows of
// a bf16 or fp32 table gathered into the fp32 residual stream, and the deterministic backward
// into an fp32 table gradient. Device pointers; asynchronous on `stream`, no synchronisation, no
// allocation.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/cuda/device.h"

namespace mf::cuda {

// x[i, :] = table[ids[i], :] (converted to fp32). table: [vocab, H]; ids: [n] int32 on the device;
// x: [n, H] fp32. Ids come from host data, so the caller checks them there; on the device an id
// outside [0, vocab) gives a row of zeros (never read out of bounds).
void embed_rows(const bf16* table, const int32_t* ids, int64_t n, int64_t H, int64_t vocab, float* x,
                cudaStream_t stream);
void embed_rows(const float* table, const int32_t* ids, int64_t n, int64_t H, int64_t vocab, float* x,
                cudaStream_t stream);

// The order of the embedding backward, built on the host from the step's ids: the distinct ids
// ascending, and for each the positions that hold it, ascending (CSR). Upload the three vectors
// and hand their device copies to embed_rows_backward.
struct EmbeddingGradPlan {
  std::vector<int32_t> ids;        // [unique] distinct ids, ascending
  std::vector<int32_t> offsets;    // [unique + 1]: positions of ids[u] are positions[offsets[u] .. offsets[u+1])
  std::vector<int32_t> positions;  // [n] every position once, grouped by id, ascending within an id
  int64_t unique() const { return int64_t(ids.size()); }
};
// Throws mf::Error naming the position of an id outside [0, vocab).
EmbeddingGradPlan make_embedding_grad_plan(std::span<const int32_t> ids, int64_t vocab);

// dtable[ids[u], :] += dx[p, :] for every position p of ids[u], in ascending p, one block per
// distinct id: no atomics, each dtable row has one writer, and the sum starts from the row's
// current value exactly as the CPU loop does (bit-identical fp32 adds). dx: [n, H] fp32;
// dtable: [vocab, H] fp32. plan_ids / plan_offsets / plan_positions: device copies of a plan's
// vectors (unique = plan.unique()).
void embed_rows_backward(const int32_t* plan_ids, const int32_t* plan_offsets, const int32_t* plan_positions,
                         int64_t unique, const float* dx, int64_t H, float* dtable, cudaStream_t stream);

}  // namespace mf::cuda

// CUDA sparse MoE dispatch (twin of kernels/cpu/moe_dispatch.h with the capacity rule of
// moe/routing.cpp): a plan that groups the (token, slot) assignments of top-k routing by
// expert, the permutation of token rows into that grouped order and back, and the gated
// combine of the experts' outputs. Pointers are device memory; every function only enqueues
// work on `stream` (no synchronisation, no allocation) and throws mf::Error on bad arguments or
// a failed launch.
//
// The plan is exactly the CPU's: within an expert, rows are in (token, slot) order, and with a
// capacity the kept assignments are chosen slot-major (every token's slot 0 before any slot 1,
// earlier tokens first), so permuted row r here is row r of mf::plan_dispatch(mf::route(...)).
// Sums over a token's slots are taken in ascending permuted-row order (= ascending expert), the
// order in which the CPU's moe_scatter_add / moe_gather_backward add them, so results are
// bit-reproducible and match the CPU's up to its own fused multiply-adds.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/device.h"

namespace mf::cuda {

inline constexpr int kDispatchMaxTopK = 8;

// Device pointers of one dispatch plan for `rows` tokens, top_k slots, E experts. Assignment
// a = token * top_k + slot.
struct DispatchPlanView {
  int32_t* counts = nullptr;       // [E]: kept rows of each expert
  int32_t* offsets = nullptr;      // [E + 1]: exclusive scan of counts; expert e owns rows [offsets[e], offsets[e+1])
  int32_t* row_of_slot = nullptr;  // [rows * top_k]: permuted row of assignment a, -1 when dropped by capacity
  int32_t* slot_of_row = nullptr;  // [rows * top_k]: assignment that fills permuted row r; only r < offsets[E] valid
};

// Scratch for plan_dispatch (8 bytes per expert; 8-byte aligned).
size_t plan_dispatch_scratch_bytes(int experts);

// Fills every array of `plan` from expert_index [rows, top_k] (device). capacity <= 0:
// dropless; otherwise each expert keeps at most `capacity` assignments, chosen slot-major.
// Assignments whose expert is outside [0, E) are dropped (row -1; the CPU throws instead).
// Needs rows * top_k < 2^31 and 1 <= top_k <= 8. Rows of slot_of_row past offsets[E] are
// left as they were.
void plan_dispatch(const int32_t* expert_index, int64_t rows, int top_k, int experts, int capacity,
                   DispatchPlanView plan, void* scratch, cudaStream_t stream);

// xp [rows * top_k, H] (permuted; rows past offsets[E] untouched): xp[row_of_slot[a]] = x[a / top_k]
// for every kept assignment a. x [rows, H].
void permute_rows(const bf16* x, DispatchPlanView plan, int64_t rows, int top_k, int64_t H, bf16* xp,
                  cudaStream_t stream);

// dx [rows, H] fp32 += sum over token t's kept slots of dxp[row] (ascending row order).
void permute_rows_backward(const bf16* dxp, DispatchPlanView plan, int64_t rows, int top_k, int64_t H, float* dx,
                           cudaStream_t stream);

// y [rows, H] fp32 += sum over token t's kept slots s of gates[t, s] * yp[row_of_slot[t, s]]
// (ascending row order, fused multiply-adds); dropped slots add nothing. yp [rows * top_k, H]
// in permuted order, gates [rows, top_k].
void combine_rows(const bf16* yp, const float* gates, DispatchPlanView plan, int64_t rows, int top_k, int64_t H,
                  float* y, cudaStream_t stream);

// Backward of combine_rows from dy [rows, H]: dyp[row] = bf16(gates[t, s] * dy[t]) for every
// kept row (written; rows past offsets[E] untouched), dgates[t, s] = dot(dy[t], yp[row])
// (written; 0 for a dropped slot).
void combine_rows_backward(const float* dy, const bf16* yp, const float* gates, DispatchPlanView plan, int64_t rows,
                           int top_k, int64_t H, bf16* dyp, float* dgates, cudaStream_t stream);

}  // namespace mf::cuda

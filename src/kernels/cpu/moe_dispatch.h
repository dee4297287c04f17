// Sparse MoE dispatch: group (token, slot) assignments by expert so that each expert runs one
// GEMM over exactly its tokens, then scatter the outputs back weighted by their gates.
#pragma once
#include <cstdint>
#include <vector>

namespace mf {

struct DispatchPlan {
  int num_experts = 0;
  std::vector<int64_t> offsets;  // size E+1; rows of expert e are [offsets[e], offsets[e+1])
  std::vector<int32_t> token;    // size T*k: source token of each grouped row
  std::vector<float> gate;       // size T*k: gate weight of each grouped row
  std::vector<int32_t> source;   // size T*k: the assignment (t * k + slot) each grouped row came from
};

// Groups the T*k assignments idx[T, k] (weights weight[T, k]) by expert, stably: within an
// expert, rows keep (token, slot) order. Throws mf::Error on an index outside [0, E).
DispatchPlan plan_dispatch(const int32_t* idx, const float* weight, int64_t T, int k, int E);

// The general form: A assignments (token[a], expert[a], gate[a]), those with kept[a] == 0 left
// out (kept may be null). Rows of an expert are in token order (ties: assignment order), and
// plan.source[row] = a. Throws mf::Error on an expert outside [0, E).
DispatchPlan plan_dispatch_assignments(const int32_t* token, const int32_t* expert, const float* gate,
                                       const uint8_t* kept, int64_t A, int E);

// gathered[r] = x[plan.token[r]] for every grouped row r  (x: [T, dim], gathered: [T*k, dim]).
void moe_gather(const float* x, const DispatchPlan& plan, int64_t dim, float* gathered);

// y[plan.token[r]] += plan.gate[r] * expert_out[r]  (y: [T, dim]). Rows are added in plan
// order whatever the thread count, so results are bit-reproducible.
void moe_scatter_add(const float* expert_out, const DispatchPlan& plan, int64_t dim, float* y);

// Backward of moe_gather: dx[plan.token[r]] += d_gathered[r] (dx: [T, dim], accumulated; rows
// added in plan order, as moe_scatter_add does).
void moe_gather_backward(const float* d_gathered, const DispatchPlan& plan, int64_t dim, float* dx);

// Backward of moe_scatter_add from dy [T, dim]: d_expert_out[r] = plan.gate[r] * dy[token[r]]
// (written), and the gradient of each row's gate, dot(expert_out[r], dy[token[r]]), written to
// dgate[plan.source[r]] so that dgate is laid out [T, k] like the router's weights.
void moe_scatter_add_backward(const float* dy, const float* expert_out, const DispatchPlan& plan, int64_t dim,
                              float* d_expert_out, float* dgate);

}  // namespace mf

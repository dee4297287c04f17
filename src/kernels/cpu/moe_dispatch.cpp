#include "kernels/cpu/moe_dispatch.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/work_pool.h"
#include "kernels/cpu/simd.h"

namespace mf {

DispatchPlan plan_dispatch_assignments(const int32_t* token, const int32_t* expert, const float* gate,
                                       const uint8_t* kept, int64_t A, int E) {
  MF_CHECK(A >= 0 && E > 0, "plan_dispatch: bad sizes, ", A, " assignments and ", E, " experts");
  DispatchPlan plan;
  plan.num_experts = E;
  plan.offsets.assign(size_t(E) + 1, 0);
  for (int64_t a = 0; a < A; ++a) {
    if (kept && !kept[a]) continue;
    MF_CHECK(expert[a] >= 0 && expert[a] < E, "plan_dispatch: assignment ", a, " of token ", token[a],
             " routes to expert ", expert[a], ", outside [0, ", E, ")");
    ++plan.offsets[size_t(expert[a]) + 1];
  }
  for (int e = 0; e < E; ++e) plan.offsets[size_t(e) + 1] += plan.offsets[size_t(e)];
  // Counting sort by expert (stable in assignment order), then token order within each expert
  // (assignments of token choice already are; expert choice lists each expert's best first).
  const size_t rows = size_t(plan.offsets[size_t(E)]);
  std::vector<int64_t> cursor(plan.offsets.begin(), plan.offsets.end() - 1);
  plan.source.resize(rows);
  for (int64_t a = 0; a < A; ++a)
    if (!kept || kept[a]) plan.source[size_t(cursor[size_t(expert[a])]++)] = int32_t(a);
  for (int e = 0; e < E; ++e) {
    const auto first = plan.source.begin() + plan.offsets[size_t(e)], last = plan.source.begin() + plan.offsets[size_t(e) + 1];
    auto by_token = [&](int32_t x, int32_t y) { return token[x] < token[y]; };
    if (!std::is_sorted(first, last, by_token)) std::stable_sort(first, last, by_token);
  }
  plan.token.resize(rows);
  plan.gate.resize(rows);
  for (size_t r = 0; r < rows; ++r) {
    plan.token[r] = token[plan.source[r]];
    plan.gate[r] = gate[plan.source[r]];
  }
  return plan;
}

DispatchPlan plan_dispatch(const int32_t* idx, const float* weight, int64_t N, int k, int E) {
  MF_CHECK(N >= 0 && k > 0 && E > 0, "plan_dispatch: bad sizes N=", N, " k=", k, " E=", E);
  std::vector<int32_t> token(static_cast<size_t>(N * k));
  for (int64_t i = 0; i < N * k; ++i) token[size_t(i)] = int32_t(i / k);
  return plan_dispatch_assignments(token.data(), idx, weight, nullptr, N * k, E);
}

namespace {

// Below this many elements a loop runs on the calling thread: the hand-off costs more than the work.
constexpr int64_t kParallelMin = int64_t(1) << 16;

// Rows of `dim` elements per piece of a parallel loop over rows.
int64_t rows_per_piece(int64_t dim) { return std::max<int64_t>(1, kParallelMin / 4 / dim); }

void check_plan(const DispatchPlan& plan, int64_t dim, const char* op) {
  MF_CHECK(dim > 0, op, ": dim must be positive, got ", dim);
  MF_CHECK(plan.offsets.size() == size_t(plan.num_experts) + 1 &&
               plan.token.size() == plan.gate.size() &&
               plan.offsets.back() == int64_t(plan.token.size()),
           op, ": inconsistent DispatchPlan (", plan.num_experts, " experts, ",
           plan.offsets.size(), " offsets, ", plan.token.size(), " rows)");
}

}  // namespace

void moe_gather(const float* x, const DispatchPlan& plan, int64_t dim, float* gathered) {
  check_plan(plan, dim, "moe_gather");
  const int64_t rows = int64_t(plan.token.size());
  parallel_ranges(rows, rows_per_piece(dim), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      std::memcpy(gathered + r * dim, x + int64_t(plan.token[size_t(r)]) * dim, size_t(dim) * sizeof(float));
  });
}

namespace {

// y[token[r]] += (gates ? gates[r] : 1) * rows_in[r], threads split by columns (see below).
void scatter_rows(const float* rows_in, const float* gates, const DispatchPlan& plan, int64_t dim, float* y) {
  const int64_t rows = int64_t(plan.token.size());
  // Several rows may target the same token, so threads split the columns, never the rows:
  // every y element is then summed by one thread in plan order.
  constexpr int64_t kCols = 256;
  const int64_t col_chunks = (dim + kCols - 1) / kCols;
  auto columns = [&](int64_t c, int) {
    const int64_t c0 = c * kCols, width = std::min(kCols, dim - c0);
    for (int64_t r = 0; r < rows; ++r)
      simd::axpy(gates ? gates[r] : 1.0f, rows_in + r * dim + c0, y + int64_t(plan.token[size_t(r)]) * dim + c0,
                 width);
  };
  if (rows * dim < kParallelMin) {
    for (int64_t c = 0; c < col_chunks; ++c) columns(c, 0);
    return;
  }
  parallel_chunks(col_chunks, columns);
}

}  // namespace

void moe_scatter_add(const float* expert_out, const DispatchPlan& plan, int64_t dim, float* y) {
  check_plan(plan, dim, "moe_scatter_add");
  scatter_rows(expert_out, plan.gate.data(), plan, dim, y);
}

void moe_gather_backward(const float* d_gathered, const DispatchPlan& plan, int64_t dim, float* dx) {
  check_plan(plan, dim, "moe_gather_backward");
  scatter_rows(d_gathered, nullptr, plan, dim, dx);
}

void moe_scatter_add_backward(const float* dy, const float* expert_out, const DispatchPlan& plan, int64_t dim,
                              float* d_expert_out, float* dgate) {
  check_plan(plan, dim, "moe_scatter_add_backward");
  MF_CHECK(plan.source.size() == plan.token.size(), "moe_scatter_add_backward: the plan has no source indices");
  const int64_t rows = int64_t(plan.token.size());
  parallel_ranges(rows, rows_per_piece(dim), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* g = dy + int64_t(plan.token[size_t(r)]) * dim;
      const float* o = expert_out + r * dim;
      float* d = d_expert_out + r * dim;
      const float gate = plan.gate[size_t(r)];
      float dot = 0;
#pragma omp simd reduction(+ : dot)
      for (int64_t i = 0; i < dim; ++i) {
        dot += o[i] * g[i];
        d[i] = gate * g[i];
      }
      dgate[plan.source[size_t(r)]] = dot;
    }
  });
}

}  // namespace mf

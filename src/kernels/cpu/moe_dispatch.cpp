#include "kernels/cpu/moe_dispatch.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "kernels/cpu/simd.h"

namespace mf {

DispatchPlan plan_dispatch(const int32_t* idx, const float* weight, int64_t T, int k, int E) {
  MF_CHECK(T >= 0 && k > 0 && E > 0, "plan_dispatch: bad sizes T=", T, " k=", k, " E=", E);
  const int64_t n = T * k;
  DispatchPlan plan;
  plan.num_experts = E;
  plan.offsets.assign(size_t(E) + 1, 0);
  for (int64_t i = 0; i < n; ++i) {
    MF_CHECK(idx[i] >= 0 && idx[i] < E, "plan_dispatch: token ", i / k, " slot ", i % k,
             " routes to expert ", idx[i], ", outside [0, ", E, ")");
    ++plan.offsets[size_t(idx[i]) + 1];
  }
  for (int e = 0; e < E; ++e) plan.offsets[size_t(e) + 1] += plan.offsets[size_t(e)];
  // Counting sort: stable, O(T*k + E).
  std::vector<int64_t> cursor(plan.offsets.begin(), plan.offsets.end() - 1);
  plan.token.resize(size_t(n));
  plan.gate.resize(size_t(n));
  plan.source.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) {
    int64_t r = cursor[size_t(idx[i])]++;
    plan.token[size_t(r)] = int32_t(i / k);
    plan.gate[size_t(r)] = weight[i];
    plan.source[size_t(r)] = int32_t(i);
  }
  return plan;
}

namespace {

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
#pragma omp parallel for schedule(static) if (rows * dim >= (1 << 16))
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(gathered + r * dim, x + int64_t(plan.token[size_t(r)]) * dim,
                size_t(dim) * sizeof(float));
}

namespace {

// y[token[r]] += (gates ? gates[r] : 1) * rows_in[r], threads split by columns (see below).
void scatter_rows(const float* rows_in, const float* gates, const DispatchPlan& plan, int64_t dim, float* y) {
  const int64_t rows = int64_t(plan.token.size());
  // Several rows may target the same token, so threads split the columns, never the rows:
  // every y element is then summed by one thread in plan order.
  constexpr int64_t kCols = 256;
  const int64_t col_chunks = (dim + kCols - 1) / kCols;
#pragma omp parallel for schedule(static) if (rows * dim >= (1 << 16) && col_chunks > 1)
  for (int64_t c = 0; c < col_chunks; ++c) {
    const int64_t c0 = c * kCols, width = std::min(kCols, dim - c0);
    for (int64_t r = 0; r < rows; ++r)
      simd::axpy(gates ? gates[r] : 1.0f, rows_in + r * dim + c0, y + int64_t(plan.token[size_t(r)]) * dim + c0,
                 width);
  }
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
#pragma omp parallel for schedule(static) if (rows * dim >= (1 << 16))
  for (int64_t r = 0; r < rows; ++r) {
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
}

}  // namespace mf

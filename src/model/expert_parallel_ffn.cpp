#include "model/expert_parallel_ffn.h"

#include <algorithm>
#include <cstring>

#include "core/checked.h"
#include "core/error.h"
#include "core/timer.h"

namespace mf {

namespace {

template <class T>
T* sized(std::vector<T>& v, int64_t n) {
  v.resize(static_cast<size_t>(n));
  return v.data();
}

// Rows received from group rank p for local expert j arrive rank-major ((p, j) blocks in p then j
// order); each expert runs over one block of its rows from every rank, expert-major ((j, p)
// blocks). Copies every block from one order to the other.
void reorder(const float* in, float* out, const std::vector<int64_t>& counts, int ranks, int per, int64_t H,
             bool to_expert_major) {
  // Where each (p, j) block starts in either order.
  std::vector<int64_t> rank_major(counts.size()), expert_major(counts.size());
  int64_t at = 0;
  for (int p = 0; p < ranks; ++p)
    for (int j = 0; j < per; ++j) rank_major[size_t(p * per + j)] = at, at += counts[size_t(p * per + j)];
  at = 0;
  for (int j = 0; j < per; ++j)
    for (int p = 0; p < ranks; ++p) expert_major[size_t(p * per + j)] = at, at += counts[size_t(p * per + j)];
  for (size_t b = 0; b < counts.size(); ++b) {
    if (counts[b] == 0) continue;
    const int64_t from = to_expert_major ? rank_major[b] : expert_major[b];
    const int64_t to = to_expert_major ? expert_major[b] : rank_major[b];
    std::memcpy(out + to * H, in + from * H, size_t(counts[b] * H) * sizeof(float));
  }
}

int64_t total(const std::vector<int64_t>& v) {
  int64_t n = 0;
  for (int64_t x : v) n = int64_t(checked_add(uint64_t(n), uint64_t(x), "expert-parallel rows"));
  return n;
}

// Rows between the ranks of the group, timed and counted.
void exchange(ExpertGroup& group, const float* send, const std::vector<int64_t>& send_rows, float* recv,
              const std::vector<int64_t>& recv_rows, int64_t H) {
  const Timer t;
  const int64_t out = total(send_rows), in = total(recv_rows);
  const size_t out_values = checked_mul(uint64_t(out), uint64_t(H), "expert-parallel send");
  const size_t in_values = checked_mul(uint64_t(in), uint64_t(H), "expert-parallel receive");
  group.comm().alltoallv_rows({send, out_values}, send_rows, {recv, in_values}, recv_rows, H);
  ExpertExchangeStats& s = group.stats();
  s.seconds += t.seconds();
  s.exchanges += 1;
  s.bytes_sent += (out - send_rows[size_t(group.rank())]) * H * int64_t(sizeof(float));
}

}  // namespace

void ExpertGroup::check_divides(int experts, int layer) const {
  MF_CHECK(experts % size() == 0, "dist.expert_parallel = ", size(), ": layer ", layer, " has ", experts,
           " experts, which do not split evenly over the ", size(), " ranks of an expert-parallel group "
           "(num_local_experts must be a multiple of dist.expert_parallel)");
}

void expert_parallel_forward(ExpertGroup& group, const MoeWeights& w, const std::vector<int64_t>& offsets,
                             const float* gathered, int64_t H, bool keep, ExpertExchangeActs& A, float* out) {
  const int X = w.num_experts(), ranks = group.size(), per = group.per_rank(X), first = group.first(X);
  MF_CHECK(offsets.size() == size_t(X) + 1, "expert parallel: ", offsets.size(), " plan offsets for ", X, " experts");
  // Counts first: every rank learns how many rows of each of its experts each rank sends.
  A.send_counts.resize(size_t(X));
  for (int e = 0; e < X; ++e) A.send_counts[size_t(e)] = offsets[size_t(e) + 1] - offsets[size_t(e)];
  A.recv_counts.resize(size_t(X));
  group.comm().alltoall(A.send_counts, A.recv_counts);
  A.send_rows.assign(size_t(ranks), 0);
  A.recv_rows.assign(size_t(ranks), 0);
  A.local_offsets.assign(size_t(per) + 1, 0);
  for (int p = 0; p < ranks; ++p)
    for (int j = 0; j < per; ++j) {
      A.send_rows[size_t(p)] += A.send_counts[size_t(p * per + j)];
      A.recv_rows[size_t(p)] += A.recv_counts[size_t(p * per + j)];
      A.local_offsets[size_t(j) + 1] += A.recv_counts[size_t(p * per + j)];
    }
  for (int j = 0; j < per; ++j) A.local_offsets[size_t(j) + 1] += A.local_offsets[size_t(j)];
  const int64_t here = A.local_offsets[size_t(per)];
  // Then the rows, each to the rank that holds its expert.
  ExpertExchangeScratch& scratch = group.scratch();
  float* staging = sized(scratch.staging, int64_t(checked_mul(uint64_t(here), uint64_t(H), "expert-parallel rows")));
  exchange(group, gathered, A.send_rows, staging, A.recv_rows, H);
  float* x = sized(A.x, here * H);
  reorder(staging, x, A.recv_counts, ranks, per, H, /*to_expert_major=*/true);
  // This rank's experts over the rows of every rank of the group: one GEMM chain per expert.
  const SwigluWeights* first_expert = &w.experts[size_t(first)];
  const int64_t I = first_expert->gate.dim(0);
  A.ffn.resize(here, I, keep);
  float* product = A.ffn.product(keep);
  float* local_out = sized(scratch.local_out, here * H);
  for (int j = 0; j < per; ++j) {
    const int64_t r0 = A.local_offsets[size_t(j)], n = A.local_offsets[size_t(j) + 1] - r0;
    if (n == 0) continue;
    swiglu_forward(first_expert[j], x + r0 * H, n, H, A.ffn.a.data() + r0 * I, A.ffn.b.data() + r0 * I,
                   product + r0 * I, local_out + r0 * H);
  }
  // The outputs back to the ranks the rows came from, in their plan order.
  reorder(local_out, staging, A.recv_counts, ranks, per, H, /*to_expert_major=*/false);
  exchange(group, staging, A.recv_rows, out, A.send_rows, H);
}

void expert_parallel_backward(ExpertGroup& group, const MoeWeights& w, const std::vector<SwigluGrads>& g,
                              ExpertExchangeActs& A, const float* dout, int64_t H, std::vector<float>& dmid,
                              float* dgathered) {
  const int X = w.num_experts(), ranks = group.size(), per = group.per_rank(X), first = group.first(X);
  MF_CHECK(g.size() == size_t(X), "expert parallel: ", g.size(), " expert gradients for ", X, " experts");
  const int64_t here = A.local_offsets[size_t(per)];
  // The output gradients to the holders (the forward's first exchange again).
  ExpertExchangeScratch& scratch = group.scratch();
  float* staging = sized(scratch.staging, here * H);
  exchange(group, dout, A.send_rows, staging, A.recv_rows, H);
  float* d_local = sized(scratch.local_out, here * H);
  reorder(staging, d_local, A.recv_counts, ranks, per, H, /*to_expert_major=*/true);
  const SwigluWeights* first_expert = &w.experts[size_t(first)];
  const int64_t I = first_expert->gate.dim(0);
  float* mid = sized(dmid, here * I);
  // The input gradients, expert-major, into the staging buffer (free again once reordered).
  float* dx_local = staging;
  for (int j = 0; j < per; ++j) {
    const int64_t r0 = A.local_offsets[size_t(j)], n = A.local_offsets[size_t(j) + 1] - r0;
    if (n == 0) continue;
    swiglu_backward(first_expert[j], g[size_t(first + j)], A.x.data() + r0 * H, n, H, A.ffn.a.data() + r0 * I,
                    A.ffn.b.data() + r0 * I, A.ffn.h.data() + r0 * I, d_local + r0 * H, mid + r0 * I,
                    dx_local + r0 * H, false);
  }
  // Back to the ranks the rows came from (d_local is read by now: it takes the rank-major order).
  reorder(dx_local, d_local, A.recv_counts, ranks, per, H, /*to_expert_major=*/false);
  exchange(group, d_local, A.recv_rows, dgathered, A.send_rows, H);
}

}  // namespace mf

// The routed experts of one MoE layer when they are split over an expert-parallel group of ranks
// (dist.expert_parallel; docs/distributed.md). Every rank routes its own rows exactly as one
// process does (moe_ffn: router, policy, capacity, dispatch plan); the plan's rows, grouped by
// expert, then go to the rank of the group that holds each expert (an all-to-all of the row
// counts, then one of the rows), that rank runs its experts over the rows of every rank of the
// group and keeps what their backward needs, and the outputs come back with a second all-to-all
// into plan order, where the gated combine continues as in one process. The backward mirrors
// it: output gradients to the holders, which accumulate their experts' weight gradients, and the
// input gradients back.
//
// Expert e of a layer of X experts is held by group rank e / (X / E): contiguous blocks of
// X / E experts (X must be a multiple of E).
#pragma once
#include <cstdint>
#include <vector>

#include "dist/communicator.h"
#include "model/layer_weights.h"
#include "model/swiglu.h"

namespace mf {

// Time and bytes of the exchanges since the last reset (metrics and the benchmark).
struct ExpertExchangeStats {
  int64_t bytes_sent = 0;  // rows sent to other ranks (this rank's own rows stay local)
  int64_t exchanges = 0;   // all-to-alls of rows
  double seconds = 0;      // in the all-to-alls, waiting for the group included
};

// Buffers of one exchange that no backward reads: shared by every layer (the exchanges run one
// after another), so that a layer keeps only what its backward needs.
struct ExpertExchangeScratch {
  std::vector<float> gathered;   // [rows, H] this rank's routed rows in plan order, before they leave
  std::vector<float> staging;    // rows as they travel, rank-major
  std::vector<float> local_out;  // the held experts' outputs (or input gradients), expert-major
};

// This rank's place in its expert-parallel group. `comm` must outlive it.
class ExpertGroup {
 public:
  explicit ExpertGroup(Communicator& comm) : comm_(comm) {}
  Communicator& comm() const { return comm_; }
  int size() const { return comm_.size(); }
  int rank() const { return comm_.rank(); }
  // Throws mf::Error naming dist.expert_parallel unless `experts` is a multiple of the group size.
  void check_divides(int experts, int layer) const;
  int per_rank(int experts) const { return experts / size(); }
  int first(int experts) const { return rank() * per_rank(experts); }
  int owner(int expert, int experts) const { return expert / per_rank(experts); }
  bool holds(int expert, int experts) const { return owner(expert, experts) == rank(); }
  ExpertExchangeStats& stats() { return stats_; }
  ExpertExchangeScratch& scratch() { return scratch_; }

 private:
  Communicator& comm_;
  ExpertExchangeStats stats_;
  ExpertExchangeScratch scratch_;
};

// One layer's exchange: the counts, and on the holder the rows of every rank of the group with
// what the experts' backward needs.
struct ExpertExchangeActs {
  std::vector<int64_t> send_counts;  // [E * per] rows sent to group rank p for its local expert j
  std::vector<int64_t> recv_counts;  // [E * per] rows from group rank p for local expert j
  std::vector<int64_t> send_rows, recv_rows;  // [E] per rank
  std::vector<int64_t> local_offsets;         // [per + 1] local expert blocks of x (expert-major)
  std::vector<float> x;                       // [rows here, H] the received rows, expert-major
  SwigluActs ffn;
};

// out[rows, H] (plan order) = expert(gathered[rows, H]) for every row of `offsets` (the dispatch
// plan's [X + 1] expert offsets), the experts run where they are held. keep: keep what the
// backward needs. Collective over the group: every rank calls it for every MoE layer in the
// same order (with no rows at all when it has no batch of its own).
void expert_parallel_forward(ExpertGroup& group, const MoeWeights& w, const std::vector<int64_t>& offsets,
                             const float* gathered, int64_t H, bool keep, ExpertExchangeActs& A, float* out);

// dgathered[rows, H] (written) from dout[rows, H] (plan order); the held experts' weight
// gradients (g.experts, null: frozen) are accumulated. Collective over the group, like the
// forward. dmid is scratch.
void expert_parallel_backward(ExpertGroup& group, const MoeWeights& w, const std::vector<SwigluGrads>& g,
                              ExpertExchangeActs& A, const float* dout, int64_t H, std::vector<float>& dmid,
                              float* dgathered);

}  // namespace mf

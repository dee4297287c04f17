// The groups of an expert-parallel job (`dist.expert_parallel = E` under `mpirun -np N`): the N
// ranks form N / E expert-parallel groups of E consecutive ranks (ranks g*E .. g*E + E - 1). The
// experts of every MoE layer are split over the E ranks of a group, and the rows routed to an
// expert travel to the rank of the group that holds it (model/expert_parallel_ffn). The ranks
// holding the same experts (the same index in each group: ranks j, j + E, j + 2E, ...) form that
// expert's data-parallel group, over which its gradients are summed.
#pragma once
#include <memory>
#include <string>

#include "dist/communicator.h"

namespace mf {

class ExpertGroups {
 public:
  // Collective over `world` (it splits it). Throws mf::Error naming dist.expert_parallel unless
  // experts_per_group >= 1 divides the world size.
  ExpertGroups(Communicator& world, int experts_per_group);
  ExpertGroups(const ExpertGroups&) = delete;
  ExpertGroups& operator=(const ExpertGroups&) = delete;

  Communicator& world() { return world_; }
  // The E ranks that share out the experts (this rank is experts().rank() in it).
  Communicator& experts() { return *experts_; }
  // The N / E ranks that hold the same experts as this one (one per expert-parallel group).
  Communicator& expert_replicas() { return *replicas_; }
  int group_size() const { return size_; }
  // The job's rank that holds, in group 0 (ranks 0 .. E - 1, the group of rank 0, which writes
  // checkpoints), what index `index` of any group holds: the rank index itself.
  static int group0_rank(int index) { return index; }

 private:
  Communicator& world_;
  int size_ = 1;
  std::unique_ptr<Communicator> experts_, replicas_;
};

}  // namespace mf

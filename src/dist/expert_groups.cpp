#include "dist/expert_groups.h"

#include "core/error.h"

namespace mf {

ExpertGroups::ExpertGroups(Communicator& world, int experts_per_group) : world_(world), size_(experts_per_group) {
  const int n = world.size();
  MF_CHECK(size_ >= 1 && n % size_ == 0, "dist.expert_parallel = ", size_, " must divide the ", n,
           " ranks of the job (ranks form groups of dist.expert_parallel consecutive ranks that share out the experts)");
  const int r = world.rank();
  experts_ = world.split(r / size_, r);
  replicas_ = world.split(r % size_, r);
}

}  // namespace mf

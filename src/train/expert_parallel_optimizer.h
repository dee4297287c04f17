// The optimizer of an expert-parallel job (dist.expert_parallel > 1): an inner optimizer (host
// AdamW, or ZeRO-1's sharded AdamW) holds the state of what this rank trains, the replicated
// tensors and the routed experts its group rank holds; the experts held elsewhere have no
// gradient or state here. This wrapper makes the job's whole model look like one optimizer's:
//
// - the gradient norm covers every expert once (a rank's experts' squares summed over its
//   expert-parallel group, plus the replicated tensors'; ZeRO-1's sharded AdamW measures the
//   whole job's norm itself);
// - visit_state and restore_state walk every trainable tensor of the whole model, in the order
//   one process does, and are collective: rank 0 receives each expert it does not hold from the
//   rank of group 0 that holds it (checkpoints and the exported model stay one file in the
//   single-process format), and a restore hands every rank a temporary for each expert it does
//   not hold (the visitor's broadcast fills it, the rank drops it), the experts it holds keeping
//   what the visitor wrote. Rank 0 reads its starting copy of an expert it does not hold only
//   then, at the start; the ranks drop those copies afterwards (release_remote_experts).
#pragma once
#include <memory>

#include "dist/expert_groups.h"
#include "train/trainable_model.h"

namespace mf {

// inner_is_sharded: ZeRO-1's sharded AdamW (train/sharded_adamw over the job's and the experts'
// buckets), which measures the whole job's gradient norm itself and shows whole moments only
// inside its visits; otherwise the host AdamW, whose visits hand out its own storage (visited
// and restored in place, no copies).
std::unique_ptr<Optimizer> make_expert_parallel_optimizer(std::unique_ptr<Optimizer> inner, bool inner_is_sharded,
                                                          ExpertGroups& groups, TrainableModel& model);

// The model's weights with, on rank 0, every trained expert it does not hold received from the
// rank of group 0 that holds it (the weights alone: exporting model/ and best/); elsewhere the
// rank's own. Collective over the job.
ModelWeights expert_parallel_weights_on_root(ExpertGroups& groups, TrainableModel& model);

}  // namespace mf

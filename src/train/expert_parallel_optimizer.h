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
//   what the visitor wrote.
#pragma once
#include <memory>

#include "dist/expert_groups.h"
#include "train/trainable_model.h"

namespace mf {

// inner_measures_job_norm: the inner optimizer's clip_grad_norm already covers the whole job
// (ZeRO-1); otherwise it covers this rank's tensors only and the wrapper measures.
std::unique_ptr<Optimizer> make_expert_parallel_optimizer(std::unique_ptr<Optimizer> inner, bool inner_measures_job_norm,
                                                          ExpertGroups& groups, TrainableModel& model);

}  // namespace mf

// ZeRO-1 (`dist.shard_optimizer: true`): AdamW whose moments are split across the ranks of a
// data-parallel job. The gradients arrive reduce-scattered (dist/gradient_buckets in
// kReduceScatter mode): each rank holds the summed gradients of one block of every bucket, keeps
// the AdamW moments of that block only, updates the weights of that block, and then all-gathers
// the updated weights so that every rank again holds the whole model for the next forward.
//
// The CPU model computes on its fp32 weights, so those stay whole on every rank: what shrinks to
// 1/N per rank is the two moments (2/3 of the fp32 weights-plus-optimizer state). Checkpoints hold
// the whole state in the single-process format: visit_state and restore_state are collective
// (every rank calls them, in the same order). visit_state gathers the whole moments on rank 0
// alone (which writes the checkpoint; the other ranks see empty moment spans); restore_state
// hands every rank whole temporaries to fill (a resume broadcasts into them) and keeps its blocks.
#pragma once
#include <memory>
#include <vector>

#include "dist/communicator.h"
#include "dist/gradient_buckets.h"
#include "train/trainable_model.h"

namespace mf {

// buckets must reduce-scatter (kReduceScatter) and hold every trainable tensor of `model`; both
// must outlive the optimizer. The optimizer's groups come from spec as for the unsharded one.
std::unique_ptr<Optimizer> make_sharded_adamw(Communicator& comm, GradientBuckets& buckets, TrainableModel& model,
                                              const OptimizerSpec& spec);

// Expert parallelism with ZeRO-1: several sets of buckets, each reduce-scattered over its own
// ranks (the replicated tensors over the whole job `comm`, a rank's experts over the ranks that
// hold them); each set's moments are sharded over its ranks, and checkpoints see a set's whole
// moments on its first rank. Together the sets hold every trainable tensor of `model` once.
struct ShardedBuckets {
  Communicator* comm = nullptr;
  GradientBuckets* buckets = nullptr;
};
std::unique_ptr<Optimizer> make_sharded_adamw(Communicator& comm, std::vector<ShardedBuckets> sets,
                                              TrainableModel& model, const OptimizerSpec& spec);

}  // namespace mf

// What the trainer does as one rank of a data-parallel job (`mpirun -np N moeforge train`), and
// nothing at all in a job of one process.
//
// The method: every rank holds the whole model and optimizer state and draws the same global
// batch from the same data stream (batch and grad_accum keep their single-process meaning). Each
// rank runs the forward/backward of its own whole micro-batches (micro-batch mi goes to rank
// mi mod N), so routing, capacity and the balance losses see exactly the micro-batches one process
// sees. The loss of every micro-batch is normalised by the scored tokens of the whole global
// batch, so the sum of the ranks' gradients is the single-process gradient; that sum is
// all-reduced in buckets started during the last local micro-batch's backward
// (dist/gradient_buckets). Every rank then clips and steps the same gradients into the same
// weights. Rank 0 alone writes files; the others receive its starting state.
//
// With expert parallelism (dist/expert_groups) the routed experts are split over groups of
// ranks: a rank's experts run the rows of its whole group (model/expert_parallel_ffn), so their
// gradients are summed only over the ranks holding the same experts, in buckets of their own;
// everything else stays as above. The ranks of a group exchange rows in every MoE layer, so they
// run in lockstep: the same number of micro-batches each, and in evaluation a rank without a
// batch in a round still serves its experts.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dist/communicator.h"
#include "dist/expert_groups.h"
#include "dist/gradient_buckets.h"
#include "model/training.h"
#include "train/trainable_model.h"
#include "train/training_data.h"

namespace mf {

class DataParallel {
 public:
  // Collective in a distributed job: every rank constructs it (it gathers the ranks' hosts).
  // Throws mf::Error when grad_accum gives some rank no micro-batch, or the model cannot be
  // trained data-parallel (its gradients are not in host memory).
  // reduction: kReduceScatter for a sharded optimizer (ZeRO-1), which then reads the sums
  // from buckets().
  // experts: expert parallelism's groups (the model's experts split over them), or null.
  DataParallel(Communicator& comm, TrainableModel& model, int grad_accum,
               GradientReduction reduction = GradientReduction::kAllReduce, ExpertGroups* experts = nullptr);

  bool distributed() const { return comm_.size() > 1; }
  bool is_root() const { return comm_.rank() == 0; }
  Communicator& comm() { return comm_; }

  // Whether micro-batch `mi` of a step is this rank's to run.
  bool owns_micro_batch(size_t mi) const { return int(mi % size_t(comm_.size())) == comm_.rank(); }
  // This rank's last micro-batch of a step (its backward starts the buckets).
  size_t last_micro_batch() const;

  // A step: begin_step(), the forward/backward of owned micro-batches (the last one with
  // grads_done() as StepOptions::on_grads_done), then finish_step() with each micro-batch's loss
  // parts (zeros for the micro-batches of other ranks). After it every rank holds the summed
  // gradients, every micro-batch's loss parts and the job's routing statistics.
  void begin_step();
  std::function<void(int part)> grads_done();
  void finish_step(std::vector<TrainingLoss>& micro_losses);

  // Scores validation batch i here (batches are shared out like micro-batches); sum_losses then
  // gives every rank each batch's (lm_sum, lm_tokens).
  bool owns_eval_batch(size_t i) const { return owns_micro_batch(i); }
  void sum_losses(std::vector<TrainingLoss>& losses);
  // Expert parallelism: whether a rank without batch i (of `batches`) must serve its experts
  // for the ranks of its group that have one in that round (every round but rank-less ones).
  bool serves_experts_for(size_t i, size_t batches) const;
  bool expert_parallel() const { return experts_ != nullptr; }
  ExpertGroups* expert_groups() { return experts_; }

  // Rank 0's decision, on every rank (stopping on a time budget that only one clock measures).
  bool agree(bool root_decision);
  // Rank 0's weights, optimizer state, buffers, step and data position onto every rank: after a
  // fresh start (so replicas start equal whatever each rank loaded) and after a resume (only
  // rank 0 reads the checkpoint).
  void share_root_state(Optimizer& opt, int64_t& step, TrainingData& data);
  // Throws mf::Error naming the ranks whose weights differ from rank 0's (a replica that drifted
  // would make the checkpoint rank 0 writes stand for none of them).
  void check_replicas_agree(Optimizer& opt);

  // Printed once by rank 0: world size, transport, hosts, what each rank holds and runs. Makes no
  // collective call (the hosts were gathered at construction), so rank 0 alone may call it.
  std::string layout(int grad_accum) const;
  // Expert parallelism: which experts rank `rank` holds, in words.
  std::string expert_block(int rank) const;
  // Communication of the last step (metrics): floats all-reduced, buckets, time waited (the
  // expert buckets' included).
  GradientSyncStats sync_stats() const;
  // Distributed jobs only.
  GradientBuckets& buckets() { return *buckets_; }
  // Expert parallelism: the held experts' buckets, summed over their replicas.
  GradientBuckets* expert_buckets() { return expert_buckets_.get(); }

 private:
  Communicator& comm_;
  TrainableModel& model_;
  int grad_accum_ = 1;
  std::unique_ptr<GradientBuckets> buckets_;  // distributed jobs only
  ExpertGroups* experts_ = nullptr;
  std::unique_ptr<GradientBuckets> expert_buckets_;  // expert parallel: the held experts' gradients
  int64_t expert_values_total_ = 0;                   // expert parallel: trainable expert values of the model
  std::vector<std::string> hosts_;            // each rank's host, in rank order (distributed jobs)
};

}  // namespace mf

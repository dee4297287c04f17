// Data-parallel gradient all-reduce in buckets, started while backward still runs (as PyTorch
// DDP does). The model's backward finishes its gradients part by part (the head, then the layers
// from last to first, then the embedding); on a step's last local micro-batch the trainer reports
// each finished part here, which copies that part's gradients into its buckets and starts their
// all-reduce at once, so the sends of later layers overlap the backward of earlier ones. finish()
// starts what is left, waits for everything and writes the sums back into the gradients.
//
// Only the tensors given here are sent: frozen tensors have no gradient and send nothing.
// Buckets start in part order on every rank (MPI requires collectives in the same order on all
// ranks), whatever order or subset of parts a rank reports.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dist/communicator.h"

namespace mf {

struct BucketedGradient {
  std::string name;
  std::span<float> grad;
  int part = 0;  // the order in which backward completes it (0 first)
};

struct GradientSyncStats {
  int64_t values = 0;          // floats all-reduced per step (every bucket)
  int buckets = 0;
  int started_in_backward = 0; // buckets of the last step started before finish()
  double wait_seconds = 0;     // the last step's time blocked in finish(): communication not overlapped
};

class GradientBuckets {
 public:
  // Tensors of one part go into buckets of at most max_bucket_bytes (a larger tensor alone).
  GradientBuckets(Communicator& comm, std::vector<BucketedGradient> grads, size_t max_bucket_bytes);
  ~GradientBuckets();
  GradientBuckets(const GradientBuckets&) = delete;
  GradientBuckets& operator=(const GradientBuckets&) = delete;

  // Starts a new step: nothing sent yet.
  void begin_step();
  // Every gradient of `part` (and of the parts before it) is final for this step: starts their
  // buckets' all-reduce.
  void part_done(int part);
  // Starts the buckets not started yet, waits for all, and writes the sums into the gradients.
  void finish();
  const GradientSyncStats& stats() const { return stats_; }

 private:
  struct Bucket {
    int part = 0;
    std::vector<std::span<float>> grads;
    std::unique_ptr<float[]> data;  // the bucket's gradients side by side, summed in place
    size_t size = 0;
    std::unique_ptr<PendingCollective> pending;
    bool started = false;
  };
  void start(Bucket& b);

  Communicator& comm_;
  std::vector<Bucket> buckets_;  // in part order
  size_t next_ = 0;              // the first bucket not started this step
  GradientSyncStats stats_;
};

}  // namespace mf

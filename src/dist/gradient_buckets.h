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

// How a step's gradient sums are delivered: all-reduce (every rank gets every sum, written back
// into the gradients) or reduce-scatter (ZeRO-1: each rank gets only the sums of its block of
// every bucket, left in the bucket for the sharded optimizer; the gradients keep the local part).
enum class GradientReduction { kAllReduce, kReduceScatter };

// Where a tensor's gradient sits in its bucket.
struct BucketSegment {
  std::string name;
  size_t offset = 0, size = 0;
};

struct BucketLayout {
  std::vector<BucketSegment> segments;
  size_t size = 0;   // values of the bucket's tensors
  size_t block = 0;  // reduce-scatter: values per rank, the size padded to a multiple of the ranks / ranks
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
  GradientBuckets(Communicator& comm, std::vector<BucketedGradient> grads, size_t max_bucket_bytes,
                  GradientReduction reduction = GradientReduction::kAllReduce);
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

  GradientReduction reduction() const { return reduction_; }
  size_t bucket_count() const { return buckets_.size(); }
  const BucketLayout& layout(size_t bucket) const { return buckets_[bucket].layout; }
  // Reduce-scatter: this rank's block of bucket `bucket`'s sums after finish(); it covers the
  // bucket's values [rank * block, (rank + 1) * block), the part past layout.size being padding.
  std::span<float> shard(size_t bucket) { return {buckets_[bucket].shard.get(), buckets_[bucket].layout.block}; }

 private:
  struct Bucket {
    int part = 0;
    BucketLayout layout;
    std::vector<std::span<float>> grads;
    std::unique_ptr<float[]> data;   // the bucket's gradients side by side (all-reduce: summed in place)
    std::unique_ptr<float[]> shard;  // reduce-scatter: this rank's block of the sums
    std::unique_ptr<PendingCollective> pending;
    bool started = false;
  };
  void start(Bucket& b);

  Communicator& comm_;
  GradientReduction reduction_;
  std::vector<Bucket> buckets_;  // in part order
  size_t next_ = 0;              // the first bucket not started this step
  GradientSyncStats stats_;
};

}  // namespace mf

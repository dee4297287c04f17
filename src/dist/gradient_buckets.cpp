#include "dist/gradient_buckets.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/timer.h"

namespace mf {

GradientBuckets::GradientBuckets(Communicator& comm, std::vector<BucketedGradient> grads, size_t max_bucket_bytes,
                                 GradientReduction reduction)
    : comm_(comm), reduction_(reduction) {
  std::stable_sort(grads.begin(), grads.end(),
                   [](const BucketedGradient& a, const BucketedGradient& b) { return a.part < b.part; });
  const size_t max_values = std::max<size_t>(1, max_bucket_bytes / sizeof(float));
  for (const BucketedGradient& g : grads) {
    if (g.grad.empty()) continue;
    const bool fits = !buckets_.empty() && buckets_.back().part == g.part &&
                      buckets_.back().layout.size + g.grad.size() <= max_values;
    if (!fits) {
      buckets_.emplace_back();
      buckets_.back().part = g.part;
    }
    Bucket& b = buckets_.back();
    b.grads.push_back(g.grad);
    b.layout.segments.push_back({g.name, b.layout.size, g.grad.size()});
    b.layout.size += g.grad.size();
  }
  const size_t ranks = size_t(comm.size());
  for (Bucket& b : buckets_) {
    b.layout.block = (b.layout.size + ranks - 1) / ranks;
    // Reduce-scatter needs equal blocks: the padding past the tensors stays zero.
    const size_t room = reduction_ == GradientReduction::kReduceScatter ? b.layout.block * ranks : b.layout.size;
    b.data = std::make_unique<float[]>(room);
    std::fill_n(b.data.get(), room, 0.0f);
    if (reduction_ == GradientReduction::kReduceScatter) b.shard = std::make_unique<float[]>(b.layout.block);
    stats_.values += int64_t(b.layout.size);
  }
  stats_.buckets = int(buckets_.size());
}

GradientBuckets::~GradientBuckets() {
  // A bucket whose all-reduce is still running (an exception between start and finish) may
  // still be written by MPI: its memory is deliberately not freed. The job is ending then,
  // because the rank that failed aborts it.
  for (Bucket& b : buckets_)
    if (b.pending && !b.pending->test()) {
      (void)b.data.release();
      (void)b.shard.release();
      (void)b.pending.release();
    }
}

void GradientBuckets::begin_step() {
  for (Bucket& b : buckets_) {
    MF_CHECK(!b.pending, "gradient buckets: a step began before the last one finished");
    b.started = false;
  }
  next_ = 0;
  stats_.started_in_backward = 0;
}

void GradientBuckets::start(Bucket& b) {
  float* out = b.data.get();
  for (std::span<float> g : b.grads) {
    std::memcpy(out, g.data(), g.size_bytes());
    out += g.size();
  }
  if (reduction_ == GradientReduction::kReduceScatter)
    b.pending = comm_.start_reduce_scatter_sum({b.data.get(), b.layout.block * size_t(comm_.size())},
                                               {b.shard.get(), b.layout.block});
  else
    b.pending = comm_.start_allreduce_sum({b.data.get(), b.layout.size});
  b.started = true;
}

void GradientBuckets::part_done(int part) {
  while (next_ < buckets_.size() && buckets_[next_].part <= part) {
    start(buckets_[next_++]);
    ++stats_.started_in_backward;
  }
  // MPI moves nonblocking collectives forward only inside MPI calls (no progress thread by
  // default): testing the running ones here lets them advance between layers.
  for (size_t i = 0; i < next_; ++i)
    if (buckets_[i].pending) buckets_[i].pending->test();
}

void GradientBuckets::finish() {
  const Timer wait;
  while (next_ < buckets_.size()) start(buckets_[next_++]);
  for (Bucket& b : buckets_) {
    b.pending->wait();
    b.pending.reset();
    if (reduction_ == GradientReduction::kReduceScatter) continue;  // the sharded optimizer reads the shard
    const float* in = b.data.get();
    for (std::span<float> g : b.grads) {
      std::memcpy(g.data(), in, g.size_bytes());
      in += g.size();
    }
  }
  stats_.wait_seconds = wait.seconds();
}

}  // namespace mf

#include "train/sharded_adamw.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "core/error.h"
#include "kernels/cpu/adamw.h"

namespace mf {

namespace {

class ShardedAdamW final : public Optimizer {
 public:
  ShardedAdamW(Communicator& comm, std::vector<ShardedBuckets> sets, TrainableModel& model, const OptimizerSpec& spec)
      : comm_(comm), sets_(std::move(sets)), groups_(spec.groups), betas_(spec.betas) {
    for (const ShardedBuckets& set : sets_)
      MF_CHECK(set.buckets->reduction() == GradientReduction::kReduceScatter,
               "sharded AdamW: the gradients must be reduce-scattered");
    struct Param {
      std::span<float> value;
      int group = 0;
    };
    std::map<std::string, Param> params;
    for (const TrainableParam& p : model.host_params()) {
      const int group = spec.group_of(p.name, model.weights().tensors.at(p.name).shape());
      MF_CHECK(group >= 0 && size_t(group) < groups_.size(), "sharded AdamW: '", p.name, "' has group ", group);
      params[p.name] = {p.value, group};
      names_.push_back(p.name);
    }
    for (size_t set = 0; set < sets_.size(); ++set) {
      GradientBuckets& buckets = *sets_[set].buckets;
      const size_t rank = size_t(sets_[set].comm->rank());
      for (size_t b = 0; b < buckets.bucket_count(); ++b) {
        const BucketLayout& layout = buckets.layout(b);
        Shard shard;
        shard.set = set;
        shard.bucket = b;
        shard.m.assign(layout.block, 0.0f);
        shard.v.assign(layout.block, 0.0f);
        // This rank's block [begin, end) of the bucket, cut into the runs of each tensor in it.
        const size_t begin = rank * layout.block, end = std::min(begin + layout.block, layout.size);
        for (const BucketSegment& seg : layout.segments) {
          auto it = params.find(seg.name);
          MF_CHECK(it != params.end() && it->second.value.size() == seg.size, "sharded AdamW: bucket tensor '", seg.name,
                   "' is not a trainable tensor of the model");
          place_[seg.name] = {shards_.size(), seg.offset, it->second.value};
          const size_t lo = std::max(begin, seg.offset), hi = std::min(end, seg.offset + seg.size);
          if (lo < hi)
            shard.pieces.push_back({it->second.value.data() + (lo - seg.offset), lo - begin, hi - lo, it->second.group});
        }
        shards_.push_back(std::move(shard));
      }
    }
    for (const std::string& name : names_)
      MF_CHECK(place_.count(name), "sharded AdamW: trainable tensor '", name, "' is in no gradient bucket");
  }

  double clip_grad_norm(float max_norm) override {
    // The squares of this rank's blocks (padding is zero), summed over the ranks: every value is
    // in one block of one rank (with expert parallelism too: an expert's block is on one of the
    // ranks holding it, the others hold other blocks of it).
    double total = 0;
    for (const Shard& s : shards_) {
      const std::span<float> g = grad_block(s);
      total += sum_of_squares(g.data(), int64_t(g.size()));
    }
    comm_.allreduce_sum({&total, 1});
    const double norm = std::sqrt(total);
    if (max_norm > 0 && std::isfinite(norm)) {
      const double coef = double(max_norm) / (norm + 1e-6);
      if (coef < 1.0)
        for (const Shard& s : shards_) {
          const std::span<float> g = grad_block(s);
          scale_inplace(g.data(), int64_t(g.size()), float(coef));
        }
    }
    return norm;
  }

  void step(float lr_multiplier) override {
    ++step_;
    for (Shard& s : shards_) {
      const float* grad = grad_block(s).data();
      for (const Piece& p : s.pieces) {
        const AdamWHyper h = AdamW::hyper(groups_[size_t(p.group)], betas_, lr_multiplier, step_);
        adamw_update(p.value, grad + p.offset, s.m.data() + p.offset, s.v.data() + p.offset, int64_t(p.size), h);
      }
    }
    gather_weights();
  }

  int64_t steps_taken() const override { return step_; }
  void set_steps_taken(int64_t steps) override { step_ = steps; }

  void visit_state(const StateVisitor& visit) override {
    // Whole moments on the first rank of each bucket set's ranks only (rank 0 for the tensors
    // every rank holds: it writes checkpoints): the other ranks never hold more than their
    // blocks, and see empty moment spans.
    Whole whole = gather_moments(false);
    for (const std::string& name : names_) {
      const Place& at = place_.at(name);
      if (set_comm(at).rank() == 0) visit(name, at.value, whole.span_m(at), whole.span_v(at));
      else visit(name, at.value, {}, {});
    }
  }

  void restore_state(const StateVisitor& visit) override {
    // Every rank gets whole temporaries here (the visitor may broadcast into them), then keeps
    // its blocks.
    Whole whole = gather_moments(true);
    for (const std::string& name : names_) {
      const Place& at = place_.at(name);
      visit(name, at.value, whole.span_m(at), whole.span_v(at));
    }
    // Keep this rank's block of what the visitor wrote.
    for (size_t i = 0; i < shards_.size(); ++i) {
      const Shard& s = shards_[i];
      const size_t rank = size_t(sets_[s.set].comm->rank());
      const size_t block = sets_[s.set].buckets->layout(s.bucket).block;
      std::copy_n(whole.m[i].begin() + std::ptrdiff_t(rank * block), block, shards_[i].m.begin());
      std::copy_n(whole.v[i].begin() + std::ptrdiff_t(rank * block), block, shards_[i].v.begin());
    }
  }

 private:
  struct Piece {
    float* value;   // the weights of this run
    size_t offset;  // where the run starts in this rank's block
    size_t size;
    int group;
  };
  struct Shard {
    size_t set = 0, bucket = 0;  // which bucket of which set this is this rank's block of
    std::vector<Piece> pieces;
    std::vector<float> m, v;  // this rank's block of the moments
  };
  struct Place {
    size_t bucket = 0, offset = 0;  // where a tensor sits: the shard of its bucket, the offset in it
    std::span<float> value;
  };
  // Every bucket's moments, whole (checkpoints): every rank's block side by side.
  struct Whole {
    std::vector<std::vector<float>> m, v;
    std::span<float> span_m(const Place& at) { return {m[at.bucket].data() + at.offset, at.value.size()}; }
    std::span<float> span_v(const Place& at) { return {v[at.bucket].data() + at.offset, at.value.size()}; }
  };

  std::span<float> grad_block(const Shard& s) { return sets_[s.set].buckets->shard(s.bucket); }
  Communicator& set_comm(const Place& at) { return *sets_[shards_[at.bucket].set].comm; }

  static std::vector<float> all_gather(Communicator& comm, std::span<const float> block) {
    std::vector<float> all(block.size() * size_t(comm.size()));
    comm.allgather(std::as_bytes(block), std::as_writable_bytes(std::span<float>(all)));
    return all;
  }

  // The whole moments on every rank (to_all), or on the first rank of each set's ranks only (the
  // others send their blocks and keep nothing).
  Whole gather_moments(bool to_all) {
    Whole whole;
    for (const Shard& s : shards_) {
      Communicator& comm = *sets_[s.set].comm;
      auto one = [&](std::span<const float> block) {
        if (to_all) return all_gather(comm, block);
        std::vector<float> all(comm.rank() == 0 ? block.size() * size_t(comm.size()) : 0);
        comm.gather(std::as_bytes(block), std::as_writable_bytes(std::span<float>(all)), 0);
        return all;
      };
      whole.m.push_back(one(s.m));
      whole.v.push_back(one(s.v));
    }
    return whole;
  }

  // Every rank updated its block of the weights: all-gather them so each rank has the whole model.
  void gather_weights() {
    for (const Shard& s : shards_) {
      const BucketLayout& layout = sets_[s.set].buckets->layout(s.bucket);
      std::vector<float> mine(layout.block, 0.0f);
      for (const Piece& p : s.pieces) std::copy_n(p.value, p.size, mine.begin() + std::ptrdiff_t(p.offset));
      const std::vector<float> all = all_gather(*sets_[s.set].comm, mine);
      for (const BucketSegment& seg : layout.segments) {
        const Place& at = place_.at(seg.name);
        std::copy_n(all.begin() + std::ptrdiff_t(seg.offset), seg.size, at.value.begin());
      }
    }
  }

  Communicator& comm_;  // the whole job (the gradient norm)
  std::vector<ShardedBuckets> sets_;
  std::vector<ParamGroup> groups_;
  AdamW::Betas betas_;
  std::vector<std::string> names_;  // the model's trainable tensors, in its order (checkpoints)
  std::map<std::string, Place> place_;
  std::vector<Shard> shards_;       // one per bucket of every set
  int64_t step_ = 0;
};

}  // namespace

std::unique_ptr<Optimizer> make_sharded_adamw(Communicator& comm, GradientBuckets& buckets, TrainableModel& model,
                                              const OptimizerSpec& spec) {
  return make_sharded_adamw(comm, {{&comm, &buckets}}, model, spec);
}

std::unique_ptr<Optimizer> make_sharded_adamw(Communicator& comm, std::vector<ShardedBuckets> sets,
                                              TrainableModel& model, const OptimizerSpec& spec) {
  return std::make_unique<ShardedAdamW>(comm, std::move(sets), model, spec);
}

}  // namespace mf

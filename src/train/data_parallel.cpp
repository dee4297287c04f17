#include "train/data_parallel.h"

#include <algorithm>
#include <cstring>
#include <set>
#include <sstream>

#include "core/error.h"
#include "model/grad_parts.h"

namespace mf {

namespace {

// Gradient buckets of at most this size (PyTorch DDP's default): large enough that per-message
// costs vanish, small enough that the first buckets start early in backward.
constexpr size_t kBucketBytes = size_t(25) << 20;

// A RoutingTally as numbers to sum over ranks (counts stay exact in doubles below 2^53), and back.
constexpr size_t kTallyScalars = 10;

void append_tally(const RoutingTally& t, size_t experts, std::vector<double>& out) {
  for (size_t e = 0; e < experts; ++e) out.push_back(e < t.load.size() ? double(t.load[e]) : 0.0);
  for (double v : {double(t.assignments), double(t.dropped), double(t.tokens), double(t.unrouted),
                   double(t.capacity_slots), t.entropy_sum, double(t.entropy_tokens), t.lb_sum, t.z_sum,
                   double(t.passes)})
    out.push_back(v);
}

RoutingTally read_tally(const double*& in, size_t experts, bool expert_choice) {
  RoutingTally t;
  t.load.resize(experts);
  for (size_t e = 0; e < experts; ++e) t.load[e] = int64_t(*in++);
  t.assignments = int64_t(*in++);
  t.dropped = int64_t(*in++);
  t.tokens = int64_t(*in++);
  t.unrouted = int64_t(*in++);
  t.capacity_slots = int64_t(*in++);
  t.entropy_sum = *in++;
  t.entropy_tokens = int64_t(*in++);
  t.lb_sum = *in++;
  t.z_sum = *in++;
  t.passes = int(*in++);
  t.expert_choice = expert_choice;
  return t;
}

// A hash of the bits of every trainable tensor's weights: equal replicas give equal hashes (the
// moments are not hashed: a sharded optimizer holds different blocks of them on each rank, and
// moments that differed would show in the weights after the next step). One 32-bit value at a
// time, mixed into 64 bits (FNV-1a's prime; a multiply per float is fast enough for every
// checkpoint of a large model).
class WeightsHash {
 public:
  void add(std::span<const float> values) {
    for (float f : values) {
      uint32_t bits;
      std::memcpy(&bits, &f, sizeof bits);
      h_ = (h_ ^ bits) * 1099511628211ull;
      h_ ^= h_ >> 29;
    }
  }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_ = 1469598103934665603ull;
};

uint64_t weights_hash(Optimizer& opt) {
  WeightsHash h;
  opt.visit_state([&](const std::string&, std::span<float> value, std::span<float>, std::span<float>) { h.add(value); });
  return h.value();
}

// The ranks (numbered by `to_rank`) whose hash differs from the first one's, or "".
template <class ToRank>
std::string differing_ranks(const std::vector<uint64_t>& hashes, ToRank to_rank) {
  std::string differing;
  for (size_t r = 1; r < hashes.size(); ++r)
    if (hashes[r] != hashes[0]) differing += (differing.empty() ? "" : ", ") + std::to_string(to_rank(r));
  return differing;
}

}  // namespace

DataParallel::DataParallel(Communicator& comm, TrainableModel& model, int grad_accum, GradientReduction reduction,
                           ExpertGroups* experts)
    : comm_(comm), model_(model), grad_accum_(grad_accum), experts_(experts) {
  MF_CHECK(!experts || distributed(), "dist.expert_parallel needs an MPI job of several ranks");
  if (!distributed()) return;
  MF_CHECK(grad_accum >= comm.size(), "train.grad_accum = ", grad_accum, " gives some of the ", comm.size(),
           " ranks no micro-batch: each rank trains whole micro-batches of the global batch (so that routing, "
           "capacity and the balance losses see the micro-batches one process sees); set train.grad_accum to at "
           "least ", comm.size(), ", best a multiple of it (lower train.batch to keep the global batch)");
  std::set<std::string> held;
  if (experts) {
    const int n = comm.size(), e = experts->group_size();
    MF_CHECK(grad_accum % n == 0, "dist.expert_parallel = ", e, ": train.grad_accum = ", grad_accum,
             " is not a multiple of the ", n, " ranks; the ranks of an expert-parallel group exchange rows in every MoE "
             "layer, so each must run the same number of micro-batches (set train.grad_accum to a multiple of ", n,
             ", lowering train.batch to keep the global batch)");
    MF_CHECK(model.expert_group() && model.expert_group()->size() == e,
             "dist.expert_parallel: the model's experts are not split over the expert-parallel groups");
    for (const std::string& name : model.held_expert_tensors()) held.insert(name);
    for (const std::string& name : held) expert_values_total_ += model.weights().tensors.at(name).numel();
    for (const TrainableTransformer::RemoteTensor& r : model.remote_expert_tensors())
      expert_values_total_ += model.weights().tensors.at(r.name).numel();
  }
  std::vector<BucketedGradient> grads, expert_grads;
  for (auto& [name, grad] : model.host_gradients())
    (held.count(name) ? expert_grads : grads).push_back({name, grad, grad_part_of(model.config(), name)});
  buckets_ = std::make_unique<GradientBuckets>(comm, std::move(grads), kBucketBytes, reduction);
  // The held experts' gradients hold the rows of the whole group already: summed over the ranks
  // holding the same experts (one per group) only.
  if (experts)
    expert_buckets_ =
        std::make_unique<GradientBuckets>(experts->expert_replicas(), std::move(expert_grads), kBucketBytes, reduction);
  // Gathered here, where every rank is, so that layout() needs no collective: printing is rank 0's
  // alone, and a collective only rank 0 reached would leave the job waiting forever.
  hosts_ = allgather_strings(comm, comm.host());
}

size_t DataParallel::last_micro_batch() const {
  const size_t n = size_t(grad_accum_), ranks = size_t(comm_.size()), r = size_t(comm_.rank());
  return r + (n - 1 - r) / ranks * ranks;
}

void DataParallel::begin_step() {
  if (buckets_) buckets_->begin_step();
  if (expert_buckets_) expert_buckets_->begin_step();
}

std::function<void(int part)> DataParallel::grads_done() {
  if (!buckets_) return {};
  return [this](int part) {
    buckets_->part_done(part);
    if (expert_buckets_) expert_buckets_->part_done(part);
  };
}

bool DataParallel::serves_experts_for(size_t i, size_t batches) const {
  if (!experts_ || i < batches) return false;
  // The round of batch i gives batch round_start + r to rank r: the group (consecutive ranks)
  // has work in it if its first rank has.
  const size_t ranks = size_t(comm_.size()), round_start = i / ranks * ranks;
  const size_t group_first = size_t(comm_.rank() - experts_->experts().rank());
  return round_start + group_first < batches;
}

GradientSyncStats DataParallel::sync_stats() const {
  GradientSyncStats s = buckets_->stats();
  if (expert_buckets_) {
    const GradientSyncStats& e = expert_buckets_->stats();
    s.values += e.values;
    s.buckets += e.buckets;
    s.started_in_backward += e.started_in_backward;
    s.wait_seconds += e.wait_seconds;
  }
  return s;
}

void DataParallel::sum_losses(std::vector<TrainingLoss>& losses) {
  if (!distributed()) return;
  // Each entry comes from the one rank that computed it (the others hold zeros), so the sums are
  // exact and every rank then adds the entries in the order one process does.
  std::vector<double> flat;
  for (const TrainingLoss& l : losses)
    for (double v : {l.lm_sum, double(l.lm_tokens), l.lb, l.z, l.domain}) flat.push_back(v);
  comm_.allreduce_sum(flat);
  constexpr size_t kParts = 5;
  for (size_t i = 0; i < losses.size(); ++i)
    losses[i] = {flat[kParts * i], int64_t(flat[kParts * i + 1]), flat[kParts * i + 2], flat[kParts * i + 3],
                 flat[kParts * i + 4]};
}

void DataParallel::finish_step(std::vector<TrainingLoss>& micro_losses) {
  if (!distributed()) return;
  buckets_->finish();
  if (expert_buckets_) expert_buckets_->finish();
  sum_losses(micro_losses);
  // Routing statistics: the balancing rule and the metrics need every rank's micro-batches.
  const std::vector<RoutingTally>& mine = model_.routing_stats();
  if (mine.empty()) return;
  const ModelConfig& c = model_.config();
  std::vector<size_t> experts;
  for (int l = 0; l < c.num_layers; ++l)
    if (c.layer_is_moe(l)) experts.push_back(size_t(c.experts_in_layer(l)));
  MF_CHECK(experts.size() == mine.size(), "data parallel: ", mine.size(), " routing tallies for ", experts.size(),
           " MoE layers");
  std::vector<double> flat;
  for (size_t i = 0; i < mine.size(); ++i) append_tally(mine[i], experts[i], flat);
  comm_.allreduce_sum(flat);
  std::vector<RoutingTally> summed;
  const double* in = flat.data();
  for (size_t i = 0; i < mine.size(); ++i) summed.push_back(read_tally(in, experts[i], mine[i].expert_choice));
  model_.set_routing_stats(std::move(summed));
}

bool DataParallel::agree(bool root_decision) {
  if (!distributed()) return root_decision;
  unsigned char flag = root_decision ? 1 : 0;
  comm_.broadcast(std::as_writable_bytes(std::span<unsigned char>(&flag, 1)), 0);
  return flag != 0;
}

void DataParallel::share_root_state(Optimizer& opt, int64_t& step, TrainingData& data) {
  if (!distributed()) return;
  opt.restore_state([&](const std::string&, std::span<float> value, std::span<float> m, std::span<float> v) {
    broadcast_floats(comm_, value, 0);
    broadcast_floats(comm_, m, 0);
    broadcast_floats(comm_, v, 0);
  });
  for (auto& [name, values] : model_.buffers()) broadcast_floats(comm_, values, 0);
  model_.buffers_written();
  int64_t steps_taken = opt.steps_taken();
  broadcast_int64(comm_, steps_taken, 0);
  opt.set_steps_taken(steps_taken);
  broadcast_int64(comm_, step, 0);
  std::string position = data.state();
  broadcast_string(comm_, position, 0);
  if (!is_root()) data.set_state(position);
}

void DataParallel::check_replicas_agree(Optimizer& opt) {
  if (!distributed()) return;
  std::string differing;
  if (experts_) {
    // The replicated tensors are on every rank; each expert on the ranks of its replicas.
    std::set<std::string> held;
    for (const std::string& name : model_.held_expert_tensors()) held.insert(name);
    WeightsHash replicated, experts;
    for (const TrainableParam& p : model_.host_params()) (held.count(p.name) ? experts : replicated).add(p.value);
    differing = differing_ranks(allgather_u64(comm_, replicated.value()), [](size_t r) { return r; });
    const size_t e = size_t(experts_->group_size()), index = size_t(experts_->experts().rank());
    const std::string experts_differ = differing_ranks(allgather_u64(experts_->expert_replicas(), experts.value()),
                                                       [&](size_t k) { return k * e + index; });
    MF_CHECK(experts_differ.empty(), "expert parallel: the experts of rank(s) ", experts_differ, " differ from rank ",
             index, "'s, which holds the same experts; the replicas drifted apart, so the run stops rather than save "
             "a checkpoint that stands for one rank only");
  } else {
    differing = differing_ranks(allgather_u64(comm_, weights_hash(opt)), [](size_t r) { return r; });
  }
  MF_CHECK(differing.empty(), "data parallel: the weights of rank(s) ", differing,
           " differ from rank 0's; the replicas drifted apart (an all-reduce that did not give every rank the same "
           "sum?), so the run stops rather than save a checkpoint that stands for one rank only");
}

namespace {

// The values of block `index` of every bucket (ZeRO-1: the AdamW moments that rank holds).
int64_t block_values(const GradientBuckets& buckets, size_t index) {
  int64_t held = 0;
  for (size_t b = 0; b < buckets.bucket_count(); ++b) {
    const BucketLayout& l = buckets.layout(b);
    const size_t begin = index * l.block;
    held += int64_t(begin < l.size ? std::min(l.block, l.size - begin) : 0);
  }
  return held;
}

}  // namespace

std::string DataParallel::expert_block(int rank) const {
  // Group rank q holds experts [q X / E, (q + 1) X / E) of a layer of X.
  const ModelConfig& c = model_.config();
  std::set<int> counts;
  for (int l = 0; l < c.num_layers; ++l)
    if (c.layer_is_moe(l)) counts.insert(c.experts_in_layer(l));
  const int e = experts_->group_size(), q = rank % e;
  std::ostringstream s;
  if (counts.size() == 1) {
    const int x = *counts.begin(), first = q * (x / e), last = first + x / e - 1;
    s << "experts " << first;
    if (last > first) s << "-" << last;
    s << " of " << x << " in every MoE layer";
  } else {
    s << "block " << q << " of " << e << " of every MoE layer's experts";
  }
  return s.str();
}

std::string DataParallel::layout(int grad_accum) const {
  if (!distributed()) return "";
  std::ostringstream s;
  const GradientSyncStats& st = buckets_->stats();
  const bool sharded = buckets_->reduction() == GradientReduction::kReduceScatter;
  const int n = comm_.size();
  s << "distributed: " << n << " ranks over " << comm_.describe() << ", data parallel";
  if (experts_) {
    const int e = experts_->group_size();
    s << " x expert parallel" << (sharded ? " with ZeRO-1" : "") << ": " << n / e << " group(s) of " << e
      << " consecutive ranks share out the routed experts of every MoE layer (rows sent to the experts' ranks and "
         "back with all-to-all); the other tensors are on every rank ("
      << st.values << " trainable values, gradients summed over all " << n << " ranks), each expert on the " << n / e
      << " rank(s) of its index in the groups (" << expert_values_total_ << " trainable expert values in all, "
      << expert_buckets_->stats().values << " on each rank, gradients summed over those ranks)"
      << (sharded ? "; AdamW moments sharded over the ranks that hold each tensor" : "")
      << "; frozen tensors send nothing; buckets started during backward\n";
  } else if (sharded) {
    s << " with ZeRO-1: every rank holds the whole model, the AdamW moments are sharded (" << st.values
      << " trainable values; frozen tensors send nothing); gradients reduce-scattered in " << st.buckets
      << " bucket(s) started during backward, each rank updates its block, weights all-gathered after the update\n";
  } else {
    s << ": every rank holds the whole model and optimizer state (" << st.values
      << " trainable values; frozen tensors send nothing); gradients all-reduced in " << st.buckets << " bucket(s), "
      << (double(st.values) * 4.0 / double(1 << 20)) << " MiB per step, started during backward\n";
  }
  for (int r = 0; r < n; ++r) {
    s << "  rank " << r << " on " << hosts_[size_t(r)] << ": micro-batches";
    for (int mi = r; mi < grad_accum; mi += n) s << " " << mi;
    s << " of " << grad_accum;
    if (experts_) s << "; holds " << expert_block(r);
    if (sharded) {
      // The moments of this rank's block of every bucket (and of its experts' buckets, whose
      // blocks are shared out over the ranks holding those experts).
      int64_t held = block_values(*buckets_, size_t(r)), total = st.values;
      if (experts_) {
        held += block_values(*expert_buckets_, size_t(r / experts_->group_size()));
        total += expert_values_total_;
      }
      s << "; AdamW moments of " << held << " of the " << total << " values";
    }
    s << (r == 0 ? "; writes metrics, checkpoints and the model" : "") << "\n";
  }
  return s.str();
}

}  // namespace mf

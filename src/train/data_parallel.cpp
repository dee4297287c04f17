#include "train/data_parallel.h"

#include <algorithm>
#include <cstring>
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
uint64_t weights_hash(Optimizer& opt) {
  uint64_t h = 1469598103934665603ull;
  auto add = [&](std::span<const float> values) {
    for (float f : values) {
      uint32_t bits;
      std::memcpy(&bits, &f, sizeof bits);
      h = (h ^ bits) * 1099511628211ull;
      h ^= h >> 29;
    }
  };
  opt.visit_state([&](const std::string&, std::span<float> value, std::span<float>, std::span<float>) { add(value); });
  return h;
}

}  // namespace

DataParallel::DataParallel(Communicator& comm, TrainableModel& model, int grad_accum, GradientReduction reduction)
    : comm_(comm), model_(model), grad_accum_(grad_accum) {
  if (!distributed()) return;
  MF_CHECK(grad_accum >= comm.size(), "train.grad_accum = ", grad_accum, " gives some of the ", comm.size(),
           " ranks no micro-batch: each rank trains whole micro-batches of the global batch (so that routing, "
           "capacity and the balance losses see the micro-batches one process sees); set train.grad_accum to at "
           "least ", comm.size(), ", best a multiple of it (lower train.batch to keep the global batch)");
  std::vector<BucketedGradient> grads;
  for (auto& [name, grad] : model.host_gradients()) grads.push_back({name, grad, grad_part_of(model.config(), name)});
  buckets_ = std::make_unique<GradientBuckets>(comm, std::move(grads), kBucketBytes, reduction);
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
}

std::function<void(int part)> DataParallel::grads_done() {
  if (!buckets_) return {};
  return [this](int part) { buckets_->part_done(part); };
}

void DataParallel::sum_losses(std::vector<TrainingLoss>& losses) {
  if (!distributed()) return;
  // Each entry comes from the one rank that computed it (the others hold zeros), so the sums are
  // exact and every rank then adds the entries in the order one process does.
  std::vector<double> flat;
  for (const TrainingLoss& l : losses)
    for (double v : {l.lm_sum, double(l.lm_tokens), l.lb, l.z}) flat.push_back(v);
  comm_.allreduce_sum(flat);
  for (size_t i = 0; i < losses.size(); ++i)
    losses[i] = {flat[4 * i], int64_t(flat[4 * i + 1]), flat[4 * i + 2], flat[4 * i + 3]};
}

void DataParallel::finish_step(std::vector<TrainingLoss>& micro_losses) {
  if (!distributed()) return;
  buckets_->finish();
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
  const std::vector<uint64_t> hashes = allgather_u64(comm_, weights_hash(opt));
  std::string differing;
  for (size_t r = 1; r < hashes.size(); ++r)
    if (hashes[r] != hashes[0]) differing += (differing.empty() ? "" : ", ") + std::to_string(r);
  MF_CHECK(differing.empty(), "data parallel: the weights of rank(s) ", differing,
           " differ from rank 0's; the replicas drifted apart (an all-reduce that did not give every rank the same "
           "sum?), so the run stops rather than save a checkpoint that stands for one rank only");
}

std::string DataParallel::layout(int grad_accum) const {
  if (!distributed()) return "";
  std::ostringstream s;
  const GradientSyncStats& st = buckets_->stats();
  const bool sharded = buckets_->reduction() == GradientReduction::kReduceScatter;
  s << "distributed: " << comm_.size() << " ranks over " << comm_.describe() << ", data parallel";
  if (sharded)
    s << " with ZeRO-1: every rank holds the whole model, the AdamW moments are sharded (" << st.values
      << " trainable values; frozen tensors send nothing); gradients reduce-scattered in " << st.buckets
      << " bucket(s) started during backward, each rank updates its block, weights all-gathered after the update\n";
  else
    s << ": every rank holds the whole model and optimizer state (" << st.values
      << " trainable values; frozen tensors send nothing); gradients all-reduced in " << st.buckets << " bucket(s), "
      << (double(st.values) * 4.0 / double(1 << 20)) << " MiB per step, started during backward\n";
  for (int r = 0; r < comm_.size(); ++r) {
    s << "  rank " << r << " on " << hosts_[size_t(r)] << ": micro-batches";
    for (int mi = r; mi < grad_accum; mi += comm_.size()) s << " " << mi;
    s << " of " << grad_accum;
    if (sharded) {
      // The moments of this rank's block of every bucket.
      int64_t held = 0;
      for (size_t b = 0; b < buckets_->bucket_count(); ++b) {
        const BucketLayout& l = buckets_->layout(b);
        const size_t begin = size_t(r) * l.block;
        held += int64_t(begin < l.size ? std::min(l.block, l.size - begin) : 0);
      }
      s << "; AdamW moments of " << held << " of the " << st.values << " values";
    }
    s << (r == 0 ? "; writes metrics, checkpoints and the model" : "") << "\n";
  }
  return s.str();
}

}  // namespace mf

#include "train/expert_parallel_optimizer.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "core/error.h"
#include "kernels/cpu/adamw.h"

namespace mf {

namespace {

class ExpertParallelOptimizer final : public Optimizer {
 public:
  ExpertParallelOptimizer(std::unique_ptr<Optimizer> inner, bool inner_is_sharded, ExpertGroups& groups,
                          TrainableModel& model)
      : inner_(std::move(inner)), sharded_(inner_is_sharded), groups_(groups), model_(model) {
    const int mine = groups.experts().rank();
    for (const std::string& name : model.held_expert_tensors()) holder_[name] = mine;
    for (const TrainableTransformer::RemoteTensor& r : model.remote_expert_tensors()) holder_[r.name] = r.holder;
    std::set<std::string> all;
    for (const std::string& name : model.trainable_names()) all.insert(name);
    for (const auto& [name, holder] : holder_) all.insert(name);
    order_.assign(all.begin(), all.end());  // name order, as one process's optimizer walks them
    for (auto& [name, grad] : model.host_gradients()) {
      const auto h = holder_.find(name);
      (h == holder_.end() ? replicated_grads_ : expert_grads_).push_back(grad);
    }
  }

  double clip_grad_norm(float max_norm) override {
    if (sharded_) return inner_->clip_grad_norm(max_norm);  // it measures the whole job's norm
    // The replicated tensors' squares are the same on every rank; each expert's are on the rank of
    // the group that holds it (and equal on its replicas in the other groups).
    double replicated = 0, experts = 0;
    for (std::span<float> g : replicated_grads_) replicated += sum_of_squares(g.data(), int64_t(g.size()));
    for (std::span<float> g : expert_grads_) experts += sum_of_squares(g.data(), int64_t(g.size()));
    groups_.experts().allreduce_sum({&experts, 1});
    const double norm = std::sqrt(replicated + experts);
    if (max_norm > 0 && std::isfinite(norm)) {
      const double coef = double(max_norm) / (norm + 1e-6);
      if (coef < 1.0) {
        for (std::span<float> g : replicated_grads_) scale_inplace(g.data(), int64_t(g.size()), float(coef));
        for (std::span<float> g : expert_grads_) scale_inplace(g.data(), int64_t(g.size()), float(coef));
      }
    }
    return norm;
  }

  void step(float lr_multiplier) override { inner_->step(lr_multiplier); }
  int64_t steps_taken() const override { return inner_->steps_taken(); }
  void set_steps_taken(int64_t steps) override { inner_->set_steps_taken(steps); }

  void visit_state(const StateVisitor& visit) override {
    std::map<std::string, Held> here = held_state(false);
    Communicator& world = groups_.world();
    const bool root = world.rank() == 0;
    for (const std::string& name : order_) {
      const auto h = holder_.find(name);
      const auto it = here.find(name);
      if (h == holder_.end() || h->second == 0) {
        // Rank 0 holds it.
        if (it != here.end()) visit(name, it->second.value, it->second.m, it->second.v);
        else visit(name, {}, {}, {});
        continue;
      }
      // Rank 0 receives it from the rank of its own group that holds it.
      const int from = ExpertGroups::group0_rank(h->second);
      const size_t n = numel(name);
      std::vector<float> value(root ? n : 0), m(root ? n : 0), v(root ? n : 0);
      const Held* sender = world.rank() == from && it != here.end() ? &it->second : nullptr;
      MF_CHECK(world.rank() != from || (sender && sender->m.size() == n && sender->v.size() == n),
               "expert parallel: rank ", from, " holds no whole optimizer state of '", name, "' to send");
      send_floats(world, from, sender ? sender->value : std::span<const float>{}, 0, value);
      send_floats(world, from, sender ? sender->m : std::span<const float>{}, 0, m);
      send_floats(world, from, sender ? sender->v : std::span<const float>{}, 0, v);
      if (root) visit(name, value, m, v);
      else if (it != here.end()) visit(name, it->second.value, it->second.m, it->second.v);
      else visit(name, {}, {}, {});
    }
  }

  void restore_state(const StateVisitor& visit) override {
    // What this rank holds, starting from its current state (a broadcast from rank 0 sends rank
    // 0's current state).
    std::map<std::string, Held> held = held_state(true);
    const bool root = groups_.world().rank() == 0;
    for (const std::string& name : order_) {
      if (auto it = held.find(name); it != held.end()) {
        visit(name, it->second.value, it->second.m, it->second.v);
        continue;
      }
      // An expert held by other ranks: a temporary for the visitor's collective, then dropped.
      // Rank 0's carries the weights it started with (the visitor may send them).
      const size_t n = numel(name);
      std::vector<float> value(n, 0.0f), m(n, 0.0f), v(n, 0.0f);
      if (root) {
        const Tensor& start = model_.weights().tensors.at(name);
        MF_CHECK(start.defined(), "expert parallel: '", name, "' is held by rank ", holder_.at(name),
                 " and rank 0 no longer has its starting weights; the job's state is restored once, at the start");
        const Tensor f32 = start.to_f32();
        std::copy_n(f32.data<float>(), n, value.begin());
      }
      visit(name, value, m, v);
    }
    if (!sharded_) return;  // the visitor wrote into the host AdamW's own storage
    inner_->restore_state([&](const std::string& name, std::span<float> value, std::span<float> m, std::span<float> v) {
      const Held& h = held.at(name);
      std::copy(h.value.begin(), h.value.end(), value.begin());
      if (!m.empty()) std::copy(h.m.begin(), h.m.end(), m.begin());
      if (!v.empty()) std::copy(h.v.begin(), h.v.end(), v.begin());
    });
  }

 private:
  // A tensor this rank trains, as visitors see it: the host AdamW's own storage (its visits hand
  // it out), or copies owned here (the sharded AdamW shows whole moments only inside its visits,
  // and on the first rank of their holders only: elsewhere they are empty, or zeros to restore).
  struct Held {
    std::span<float> value, m, v;
    std::vector<float> own_value, own_m, own_v;
  };
  std::map<std::string, Held> held_state(bool to_restore) {
    std::map<std::string, Held> out;
    inner_->visit_state([&](const std::string& name, std::span<float> value, std::span<float> m, std::span<float> v) {
      Held& h = out[name];
      if (!sharded_) {
        h.value = value;
        h.m = m;
        h.v = v;
        return;
      }
      h.own_m.assign(m.begin(), m.end());
      h.own_v.assign(v.begin(), v.end());
      if (to_restore) {
        // The visitor may write every value before the sharded optimizer takes them.
        h.own_value.assign(value.begin(), value.end());
        h.own_m.resize(value.size(), 0.0f);
        h.own_v.resize(value.size(), 0.0f);
        h.value = h.own_value;
      } else {
        h.value = value;
      }
      h.m = h.own_m;
      h.v = h.own_v;
    });
    return out;
  }
  size_t numel(const std::string& name) { return size_t(model_.weights().tensors.at(name).numel()); }

  std::unique_ptr<Optimizer> inner_;
  bool sharded_;
  ExpertGroups& groups_;
  TrainableModel& model_;
  std::map<std::string, int> holder_;  // trainable routed-expert tensors: the group rank holding each
  std::vector<std::string> order_;     // every trainable tensor of the whole model, in name order
  std::vector<std::span<float>> replicated_grads_, expert_grads_;
};

}  // namespace

ModelWeights expert_parallel_weights_on_root(ExpertGroups& groups, TrainableModel& model) {
  Communicator& world = groups.world();
  const bool root = world.rank() == 0;
  // Every trainable expert with the group rank holding it: the same list on every rank.
  std::map<std::string, int> holder;
  for (const std::string& name : model.held_expert_tensors()) holder[name] = groups.experts().rank();
  for (const TrainableTransformer::RemoteTensor& r : model.remote_expert_tensors()) holder[r.name] = r.holder;
  ModelWeights weights = model.weights();  // shares the tensors' storage
  for (const auto& [name, index] : holder) {
    if (index == 0) continue;  // rank 0 holds it
    const int from = ExpertGroups::group0_rank(index);
    Tensor& t = weights.tensors.at(name);
    const size_t n = size_t(t.numel());
    std::vector<float> value(root ? n : 0);
    // The holder's copy is its fp32 master.
    const std::span<const float> mine =
        world.rank() == from ? std::span<const float>(t.data<float>(), n) : std::span<const float>{};
    send_floats(world, from, mine, 0, value);
    if (root) t = Tensor::from_f32(t.shape(), value);
  }
  return weights;
}

std::unique_ptr<Optimizer> make_expert_parallel_optimizer(std::unique_ptr<Optimizer> inner, bool inner_is_sharded,
                                                          ExpertGroups& groups, TrainableModel& model) {
  return std::make_unique<ExpertParallelOptimizer>(std::move(inner), inner_is_sharded, groups, model);
}

}  // namespace mf

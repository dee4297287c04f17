// The CPU training model: binds gradient buffers to the unfrozen tensors, then runs a step as
// a loop over layers calling the blocks' training forwards (attention_train, ffn_train), the
// head and loss (lm_head_train), and the reverse loop over their backwards.
#include "model/trainable_transformer.h"

#include <algorithm>

#include "core/denormals.h"
#include "core/error.h"
#include "kernels/cpu/rope.h"
#include "model/attention_train.h"
#include "model/blocks.h"
#include "model/ffn_train.h"
#include "model/grad_parts.h"
#include "model/layer_weights.h"
#include "model/lm_head_train.h"
#include "model/tensor_names.h"

namespace mf {

namespace {

struct LayerGrads {
  AttentionGrads attn;
  FfnGrads ffn;
};

struct LayerActs {
  AttentionActs attn;
  FfnActs ffn;
};

// Per-step buffers, kept between steps so that a training step allocates nothing once the
// shapes have been seen.
struct StepScratch {
  std::vector<int32_t> positions;
  std::vector<uint8_t> counted;
  std::vector<float> x, dx;  // residual stream and its gradient [N, H]
  std::vector<float> layer_inputs;  // recompute: each layer's input [L, N, H]; x of the recomputed layer
  std::vector<float> recomputed_x;
  AttentionScratch attn;
  FfnScratch ffn;
  LmHeadScratch head;
};

// The position of MoE layer l among the model's MoE layers.
int moe_layer_index(const ModelConfig& c, int l) {
  int i = 0;
  for (int j = 0; j < l; ++j) i += c.layer_is_moe(j);
  return i;
}

}  // namespace

struct TrainableTransformer::Impl {
  ModelWeights weights;
  TransformerWeights bound;
  std::map<std::string, std::vector<float>> grads;
  std::vector<LayerGrads> layer_grads;
  float* embed_grad = nullptr;
  LmHeadGrads head_grads;
  std::unique_ptr<RopeTable> rope;
  std::vector<LayerActs> acts;
  StepScratch scratch;
  std::vector<RoutingTally> tallies;   // one per MoE layer
  std::vector<std::string> buffer_names;
  ExpertGroup* experts = nullptr;          // expert parallel: the group the routed experts are split over
  std::vector<std::string> held_experts;   // trainable routed-expert tensors held here
  std::vector<TrainableTransformer::RemoteTensor> remote_experts;  // ... and held by the group's other ranks
  // Only routers train and their gates are constant (top-1, renormalised): the LM loss gives them
  // no gradient, so a step is a forward that adds each router's aux-loss gradient as it goes.
  bool routers_only_local = false;

  float* grad_of(const std::string& name) {
    auto it = grads.find(name);
    return it == grads.end() ? nullptr : it->second.data();
  }
};

void check_training_batch(std::span<const int32_t> tokens, std::span<const int32_t> targets, int batch) {
  MF_CHECK(batch >= 1 && !tokens.empty() && tokens.size() % size_t(batch) == 0, "forward_backward: ", tokens.size(),
           " tokens do not split into ", batch, " equal rows");
  MF_CHECK(targets.size() == tokens.size(), "forward_backward: ", targets.size(), " targets for ", tokens.size(),
           " tokens");
}

TrainableTransformer::TrainableTransformer(ModelWeights weights, const std::function<bool(const std::string&)>& frozen,
                                           ExpertGroup* experts)
    : impl_(std::make_unique<Impl>()) {
  const ModelConfig& c = weights.config;
  c.validate();
  impl_->experts = experts;
  // Expert parallelism: the routed experts of other group ranks are left as stored, like frozen
  // tensors, and never read here.
  std::map<std::string, int> holder;
  if (experts)
    for (int l = 0; l < c.num_layers; ++l) {
      if (!c.layer_is_moe(l)) continue;
      const int X = c.experts_in_layer(l);
      experts->check_divides(X, l);
      const MoeNames mn = moe_names(c, l);
      for (int e = 0; e < X; ++e)
        for (int part = 0; part < 3; ++part) holder[mn.expert(e, part)] = experts->owner(e, X);
    }
  for (auto& [name, t] : weights.tensors) {
    if (is_buffer(name)) {
      // A buffer: updated by the balancing rule, not by gradients, so an owned fp32 copy.
      const Tensor f32 = t.dtype() == DType::F32 ? t : t.to_f32();
      t = Tensor::from_f32(f32.shape(), {f32.data<float>(), size_t(f32.numel())});
      impl_->buffer_names.push_back(name);
      continue;
    }
    if (frozen(name)) continue;
    if (auto h = holder.find(name); h != holder.end()) {
      if (h->second != experts->rank()) {
        impl_->remote_experts.push_back({name, h->second});
        continue;
      }
      impl_->held_experts.push_back(name);
    }
    // An owned fp32 master copy: stored tensors may be read-only views of a file mapping.
    const Tensor f32 = t.dtype() == DType::F32 ? t : t.to_f32();
    t = Tensor::from_f32(f32.shape(), {f32.data<float>(), size_t(f32.numel())});
    impl_->grads[name].assign(size_t(t.numel()), 0.0f);
  }
  impl_->weights = std::move(weights);
  impl_->bound = bind_weights(impl_->weights);
  Impl& m = *impl_;
  m.embed_grad = m.grad_of(kEmbedTokensName);
  m.head_grads.final_norm = m.grad_of(kFinalNormName);
  m.head_grads.head = c.tie_word_embeddings ? m.embed_grad : m.grad_of(kLmHeadName);
  for (int l = 0; l < c.num_layers; ++l) {
    const LayerNames n = layer_names(l);
    LayerGrads g;
    g.attn.norm = m.grad_of(n.attn_norm());
    g.ffn.norm = m.grad_of(n.ffn_norm());
    g.attn.q = m.grad_of(n.attn('q'));
    g.attn.k = m.grad_of(n.attn('k'));
    g.attn.v = m.grad_of(n.attn('v'));
    g.attn.o = m.grad_of(n.attn('o'));
    g.attn.q_bias = m.grad_of(n.attn_bias('q'));
    g.attn.k_bias = m.grad_of(n.attn_bias('k'));
    g.attn.v_bias = m.grad_of(n.attn_bias('v'));
    g.attn.o_bias = m.grad_of(n.attn_bias('o'));
    if (c.layer_is_moe(l)) {
      const MoeNames mn = moe_names(c, l);
      MoeGrads& mg = g.ffn.moe;
      mg.router = m.grad_of(mn.router());
      mg.noise = m.grad_of(mn.noise());
      for (int e = 0; e < c.experts_in_layer(l); ++e)
        mg.experts.push_back({m.grad_of(mn.expert(e, 0)), m.grad_of(mn.expert(e, 1)), m.grad_of(mn.expert(e, 2))});
      mg.shared = {m.grad_of(mn.shared(0)), m.grad_of(mn.shared(1)), m.grad_of(mn.shared(2))};
      mg.shared_gate = m.grad_of(mn.shared_gate());
      m.tallies.emplace_back();
    } else {
      g.ffn.mlp = {m.grad_of(n.mlp(kMlpGate)), m.grad_of(n.mlp(kMlpUp)), m.grad_of(n.mlp(kMlpDown))};
    }
    m.layer_grads.push_back(std::move(g));
  }
  m.acts.resize(size_t(c.num_layers));
  m.routers_only_local = experts == nullptr && !m.grads.empty() && router_gates_are_constant(c) &&
                         std::all_of(m.grads.begin(), m.grads.end(), [](const auto& g) { return is_router_name(g.first); });
}

TrainableTransformer::~TrainableTransformer() = default;
TrainableTransformer::TrainableTransformer(TrainableTransformer&&) noexcept = default;
TrainableTransformer& TrainableTransformer::operator=(TrainableTransformer&&) noexcept = default;

const ModelConfig& TrainableTransformer::config() const { return impl_->weights.config; }
const ModelWeights& TrainableTransformer::weights() const { return impl_->weights; }

bool TrainableTransformer::routers_train_in_forward() const { return impl_->routers_only_local; }

void TrainableTransformer::zero_grad() {
  for (auto& [name, g] : impl_->grads) std::fill(g.begin(), g.end(), 0.0f);
}

std::vector<std::span<float>> TrainableTransformer::gradients() {
  std::vector<std::span<float>> out;
  for (auto& [name, g] : impl_->grads) out.emplace_back(g);
  return out;
}

const std::vector<float>* TrainableTransformer::grad(const std::string& name) const {
  auto it = impl_->grads.find(name);
  return it == impl_->grads.end() ? nullptr : &it->second;
}

std::vector<TrainableParam> TrainableTransformer::trainable_params() {
  std::vector<TrainableParam> out;
  for (auto& [name, g] : impl_->grads) {
    Tensor& t = impl_->weights.tensors.at(name);
    out.push_back({name, {t.data<float>(), size_t(t.numel())}, g, 0});
  }
  return out;
}

TrainingLoss TrainableTransformer::forward_backward(std::span<const int32_t> tokens, std::span<const int32_t> targets,
                                                    int batch, const StepOptions& opts) {
  return run(tokens, targets, batch, opts, true);
}

TrainingLoss TrainableTransformer::evaluate(std::span<const int32_t> tokens, std::span<const int32_t> targets,
                                            int batch) {
  return run(tokens, targets, batch, {}, false);
}

void TrainableTransformer::serve_experts() {
  Impl& m = *impl_;
  MF_CHECK(m.experts, "serve_experts: this model's experts are not split over a group");
  const ModelConfig& c = m.weights.config;
  const int64_t H = c.hidden_size;
  for (int l = 0; l < c.num_layers; ++l) {
    const LayerWeights& L = m.bound.layers[size_t(l)];
    if (!L.is_moe) continue;
    // No rows of its own: an empty plan, in the forward's exchanges, layer by layer as the ranks
    // with a batch reach them.
    const std::vector<int64_t> no_rows(size_t(L.moe.num_experts()) + 1, 0);
    expert_parallel_forward(*m.experts, L.moe, no_rows, nullptr, H, /*keep=*/false, m.acts[size_t(l)].ffn.moe.exchange,
                            nullptr);
  }
}

void TrainableTransformer::release_remote_experts() {
  Impl& m = *impl_;
  const ModelConfig& c = m.weights.config;
  std::map<std::string, int> remote;
  for (const RemoteTensor& r : m.remote_experts) remote[r.name] = r.holder;
  auto release = [](Tensor& t) { t = Tensor(t.dtype(), t.shape(), nullptr, nullptr); };
  for (int l = 0; l < c.num_layers; ++l) {
    if (!c.layer_is_moe(l)) continue;
    const MoeNames mn = moe_names(c, l);
    for (int e = 0; e < c.experts_in_layer(l); ++e) {
      SwigluWeights& bound = m.bound.layers[size_t(l)].moe.experts[size_t(e)];
      LinearWeight* parts[3] = {&bound.gate, &bound.up, &bound.down};
      for (int part = 0; part < 3; ++part) {
        const std::string name = mn.expert(e, part);
        if (!remote.count(name)) continue;
        release(parts[part]->w);
        release(m.weights.tensors.at(name));
      }
    }
  }
}

ExpertGroup* TrainableTransformer::expert_group() const { return impl_->experts; }
std::vector<std::string> TrainableTransformer::held_expert_tensors() const { return impl_->held_experts; }
std::vector<TrainableTransformer::RemoteTensor> TrainableTransformer::remote_expert_tensors() const {
  return impl_->remote_experts;
}

const std::vector<RoutingTally>& TrainableTransformer::routing_stats() const { return impl_->tallies; }

void TrainableTransformer::reset_routing_stats() {
  for (RoutingTally& t : impl_->tallies) t.reset();
}

void TrainableTransformer::set_routing_stats(std::vector<RoutingTally> tallies) {
  MF_CHECK(tallies.size() == impl_->tallies.size(), "set_routing_stats: ", tallies.size(), " tallies for ",
           impl_->tallies.size(), " MoE layers");
  impl_->tallies = std::move(tallies);
}

bool TrainableTransformer::update_selection_bias(float rate) {
  const ModelConfig& c = impl_->weights.config;
  bool any = false;
  size_t moe_index = 0;
  for (int l = 0; l < c.num_layers; ++l) {
    if (!c.layer_is_moe(l)) continue;
    const RoutingTally& tally = impl_->tallies[moe_index++];
    auto it = impl_->weights.tensors.find(moe_names(c, l).selection_bias());
    if (it == impl_->weights.tensors.end() || tally.load.empty()) continue;
    any = true;
    mf::update_selection_bias(tally, rate, it->second.data<float>());
  }
  return any;
}

std::vector<std::pair<std::string, std::span<float>>> TrainableTransformer::buffers() {
  std::vector<std::pair<std::string, std::span<float>>> out;
  for (const std::string& name : impl_->buffer_names) {
    Tensor& t = impl_->weights.tensors.at(name);
    out.emplace_back(name, std::span<float>(t.data<float>(), size_t(t.numel())));
  }
  return out;
}

TrainingLoss TrainableTransformer::run(std::span<const int32_t> tokens, std::span<const int32_t> targets, int batch,
                                       const StepOptions& opts, bool backward) {
  Impl& m = *impl_;
  const FlushDenormals flush_denormals;
  const ModelConfig& c = m.weights.config;
  check_training_batch(tokens, targets, batch);
  const int64_t N = int64_t(tokens.size()), T = N / batch, H = c.hidden_size;
  MF_CHECK(c.sliding_window <= 0 || T <= c.sliding_window, "forward_backward: sequences of ", T,
           " tokens exceed the sliding window of ", c.sliding_window, " (not supported in training yet)");
  if (!m.rope || m.rope->max_positions() < T)
    m.rope = std::make_unique<RopeTable>(c.effective_head_dim(), int(T), c.rope_theta);
  StepScratch& S = m.scratch;
  S.positions.resize(size_t(N));
  S.counted.resize(size_t(N));
  for (int64_t i = 0; i < N; ++i) {
    S.positions[size_t(i)] = int32_t(i % T);
    S.counted[size_t(i)] = targets[size_t(i)] >= 0;
  }
  const SequenceBatch sb{batch, T, S.positions.data(), m.rope.get()};
  FfnPass pass;
  pass.training = backward;
  pass.noise_seed = opts.noise_seed;
  pass.counted = S.counted.data();
  pass.losses.lb_coef = opts.lb_coef * opts.grad_scale;
  pass.losses.z_coef = opts.z_coef * opts.grad_scale;
  pass.losses.lb_per_sequence = opts.lb_per_sequence;
  pass.losses.batch = batch;
  if (!opts.route_targets.empty()) {
    MF_CHECK(opts.route_targets.size() == size_t(N), "forward_backward: ", opts.route_targets.size(),
             " route targets for ", N, " tokens");
    pass.losses.route_targets = opts.route_targets.data();
    pass.losses.domain_coef = opts.domain_coef * opts.grad_scale;
    pass.losses.domain_per_token = opts.domain_per_token;
  }
  pass.experts = m.experts;

  // Routers-only training with constant gates: every gradient is an aux loss's at its own router,
  // added during the forward; nothing runs backward. The same gradients as the full backward, bit
  // for bit (its routing term is exactly zero), at the cost of a forward.
  const bool local_grads = backward && m.routers_only_local;
  // With recomputation every layer's activations go to one LayerActs (the backward fills it again
  // layer by layer), and each layer's input is kept instead.
  const bool recompute = backward && opts.recompute && !local_grads;
  MF_CHECK(!recompute || m.experts == nullptr, "train.recompute is not supported with expert parallelism "
           "(dist.expert_parallel > 1) yet: the recomputed forward would exchange the rows again");
  // An evaluation keeps nothing for a backward, so its layers share one LayerActs too.
  auto acts_of = [&](int l) -> LayerActs& { return m.acts[recompute || !backward || local_grads ? 0 : size_t(l)]; };
  if (recompute) S.layer_inputs.resize(size_t(c.num_layers) * size_t(N * H));

  // ---------------------------------------------------------------- forward
  S.x.resize(size_t(N * H));
  float* x = S.x.data();
  embed_tokens(m.bound.embed, tokens.data(), N, x);
  TrainingLoss loss;
  for (int l = 0; l < c.num_layers; ++l) {
    const LayerWeights& L = m.bound.layers[size_t(l)];
    LayerActs& A = acts_of(l);
    if (recompute) std::copy(x, x + N * H, S.layer_inputs.begin() + int64_t(l) * N * H);
    attention_train_forward(c, L, sb, x, A.attn, S.attn);
    const MoeAuxLosses aux = ffn_train_forward(c, L, l, sb, pass, x, A.ffn, S.ffn);
    loss.lb += aux.lb;
    loss.z += aux.z;
    loss.domain += aux.domain;
    if (local_grads) ffn_train_router_aux_backward(c, L, m.layer_grads[size_t(l)].ffn, sb, pass, A.ffn, S.ffn);
    if (backward && L.is_moe) {
      RoutingTally& tally = m.tallies[size_t(moe_layer_index(c, l))];
      tally.add(A.ffn.moe.routing, A.ffn.moe.logits.data(), pass.counted);
      tally.add_losses(aux.lb, aux.z);
    }
  }

  // ---------------------------------------------------------------- head and loss
  for (int64_t i = 0; i < N; ++i) loss.lm_tokens += S.counted[size_t(i)];
  const int64_t norm_tokens = opts.loss_tokens > 0 ? opts.loss_tokens : std::max<int64_t>(1, loss.lm_tokens);
  const float lm_scale = opts.grad_scale / float(norm_tokens);
  S.dx.resize(size_t(N * H));
  float* dx = backward && !local_grads ? S.dx.data() : nullptr;
  loss.lm_sum = lm_head_train(c, m.bound, m.head_grads, x, targets, lm_scale, dx, S.head);
  if (!backward) return loss;
  auto grads_done = [&](int part) {
    if (opts.on_grads_done) opts.on_grads_done(part);
  };
  grads_done(kHeadGradPart);
  if (local_grads) {
    for (int l = c.num_layers - 1; l >= 0; --l) grads_done(layer_grad_part(c, l));
    grads_done(embedding_grad_part(c));
    return loss;
  }

  // ---------------------------------------------------------------- backward
  for (int l = c.num_layers - 1; l >= 0; --l) {
    const LayerWeights& L = m.bound.layers[size_t(l)];
    LayerActs& A = acts_of(l);
    const LayerGrads& G = m.layer_grads[size_t(l)];
    if (recompute) {
      // The layer's forward again, from its kept input: same inputs, same kernels, same noise
      // seed, so the same activations and routing (its statistics were counted the first time).
      const auto in = S.layer_inputs.begin() + int64_t(l) * N * H;
      S.recomputed_x.assign(in, in + N * H);
      attention_train_forward(c, L, sb, S.recomputed_x.data(), A.attn, S.attn);
      ffn_train_forward(c, L, l, sb, pass, S.recomputed_x.data(), A.ffn, S.ffn);
    }
    ffn_train_backward(c, L, G.ffn, sb, pass, A.ffn, dx, S.ffn);
    attention_train_backward(c, L, G.attn, sb, A.attn, dx, S.attn);
    grads_done(layer_grad_part(c, l));
  }
  if (m.embed_grad) embed_tokens_backward(tokens.data(), N, dx, H, c.vocab_size, m.embed_grad);
  grads_done(embedding_grad_part(c));
  return loss;
}

}  // namespace mf

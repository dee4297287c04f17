// The CUDA training model: the device twin of model/training.cpp. A step is a loop over layers
// calling the blocks' training forwards (gpu/attention_train, gpu/ffn_train), the head and loss
// (gpu/lm_head_train), the reverse loop over their backwards, and one read-back of the loss
// parts and routing statistics.
#include "gpu/cuda_trainable_model.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "gpu/attention_train.h"
#include "gpu/cuda_optimizer.h"
#include "gpu/device_step.h"
#include "gpu/ffn_train.h"
#include "gpu/layer_binding.h"
#include "gpu/lm_head_train.h"
#include "gpu/model_layout.h"
#include "gpu/param_store.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/embedding.h"
#include "model/tensor_names.h"
#include "moe/router_noise.h"
#include "moe/routing.h"

namespace mf::gpu {

namespace {

struct LayerSaved {
  AttentionSaved attn;
  FfnSaved ffn;
};

// A step's inputs on the host and the device: positions, the loss mask and the scored rows.
struct StepInputs {
  std::vector<int32_t> positions, scored_rows, scored_targets;
  std::vector<uint8_t> counted;
  const int32_t *d_tokens = nullptr, *d_positions = nullptr;
  const uint8_t* d_counted = nullptr;
  ScoredRows scored;
};

StepInputs upload_inputs(DeviceStep& d, std::span<const int32_t> tokens, std::span<const int32_t> targets, int64_t T,
                         int64_t vocab) {
  const int64_t N = int64_t(tokens.size());
  StepInputs in;
  in.positions.resize(size_t(N));
  in.counted.resize(size_t(N));
  for (int64_t i = 0; i < N; ++i) {
    MF_CHECK(tokens[size_t(i)] >= 0 && tokens[size_t(i)] < vocab, "forward_backward: token id ", tokens[size_t(i)],
             " outside the vocabulary of ", vocab);
    in.positions[size_t(i)] = int32_t(i % T);
    in.counted[size_t(i)] = targets[size_t(i)] >= 0;
    if (targets[size_t(i)] < 0) continue;
    MF_CHECK(targets[size_t(i)] < vocab, "forward_backward: target ", targets[size_t(i)], " outside the vocabulary");
    in.scored_rows.push_back(int32_t(i));
    in.scored_targets.push_back(targets[size_t(i)]);
  }
  in.d_tokens = upload_to<int32_t>(d.arena, tokens, "token ids", d.s());
  in.d_positions = upload_to<int32_t>(d.arena, in.positions, "positions", d.s());
  in.d_counted = upload_to<uint8_t>(d.arena, in.counted, "loss mask", d.s());
  in.scored.rows = upload_to<int32_t>(d.arena, in.scored_rows, "scored rows", d.s());
  in.scored.targets = upload_to<int32_t>(d.arena, in.scored_targets, "targets", d.s());
  in.scored.count = int64_t(in.scored_rows.size());
  return in;
}

// What a MoE layer's routing did, from its dispatch plan: load per expert from the offsets,
// drops and unreached tokens from the slots' rows.
RoutingCounts plan_counts(const ModelConfig& c, const MoeSaved& S, const std::vector<int32_t>& row_of_slot,
                          int64_t N) {
  const int E = int(S.offsets.size()) - 1, slots = moe_slots(c);
  RoutingCounts r;
  r.load.resize(size_t(E));
  for (int e = 0; e < E; ++e) r.load[size_t(e)] = S.offsets[size_t(e) + 1] - S.offsets[size_t(e)];
  r.assignments = N * slots;
  r.dropped = N * slots - S.offsets.back();
  r.tokens = N;
  for (int64_t t = 0; t < N; ++t) {
    bool reached = false;
    for (int s = 0; s < slots; ++s) reached |= row_of_slot[size_t(t * slots + s)] >= 0;
    r.unrouted += !reached;
  }
  r.capacity = expert_capacity(route_options(c.routing, slots, true, nullptr), N, E);
  return r;
}

}  // namespace

std::string cuda_training_unsupported(const ModelConfig& c) { return cuda_unsupported(c); }

struct CudaTrainableModel::Impl {
  ModelWeights weights;  // host copy: config, frozen tensors, and the export target of weights()
  int device = 0;
  std::unique_ptr<cuda::Stream> stream;
  std::unique_ptr<cuda::Blas> blas;
  std::unique_ptr<ParamStore> params;
  std::unique_ptr<cuda::DeviceRopeTable> rope;
  cuda::DeviceArena arena;
  const DeviceTensor* embed = nullptr;
  LmHeadTensors head;
  std::vector<GpuLayer> layers;
  std::vector<int> tally_of_layer;          // index into tallies; -1 for dense layers
  std::vector<LayerSaved> saved;
  std::vector<std::vector<float>> gaussian;  // per layer: noisy top-k's draws of the current step
  std::vector<RoutingTally> tallies;
  std::vector<std::string> buffer_names;     // selection biases (host copies in `weights`)
  bool buffers_dirty = false;

  cudaStream_t s() const { return stream->get(); }
  TrainingLoss run(std::span<const int32_t> tokens, std::span<const int32_t> targets, int batch,
                   const StepOptions& opts, bool backward);
  void forward_layers(DeviceStep& d, const DeviceSequenceBatch& sb, MoeFfnPass& pass, const StepInputs& in,
               uint64_t noise_seed, std::vector<float*>& residual);
  void backward_layers(DeviceStep& d, const DeviceSequenceBatch& sb, const MoeFfnPass& pass, const MoeLossCoefs& coefs,
                const BackwardBuffers& b);
  TrainingLoss read_results(const MoeFfnPass& pass, const StepInputs& in, const cuda::CrossEntropyTotals* totals,
                            bool backward);
  void upload_buffers();
  void sync_weights_to_host();
};

CudaTrainableModel::CudaTrainableModel(ModelWeights weights, const std::function<bool(const std::string&)>& frozen,
                                       CudaDeviceOptions options)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  const ModelConfig& c = weights.config;
  c.validate();
  const std::string unsupported = cuda_training_unsupported(c);
  MF_CHECK(unsupported.empty(), "the CUDA training path does not implement ", unsupported,
           " yet; train this model with --device cpu");
  cuda::require_device(options.device);
  m.device = options.device;
  m.stream = std::make_unique<cuda::Stream>();
  m.blas = std::make_unique<cuda::Blas>(m.s());
  m.params = std::make_unique<ParamStore>(weights, frozen, device_layout_order(c));
  // Host copies of trainable tensors become owned fp32 tensors, refreshed by weights().
  for (const DeviceTensor* d : m.params->trainable()) {
    Tensor& t = weights.tensors.at(d->name);
    const Tensor f32 = t.dtype() == DType::F32 ? t : t.to_f32();
    t = Tensor::from_f32(f32.shape(), {f32.data<float>(), size_t(f32.numel())});
  }
  for (auto& [name, t] : weights.tensors)
    if (is_buffer(name)) {
      const Tensor f32 = t.dtype() == DType::F32 ? t : t.to_f32();
      t = Tensor::from_f32(f32.shape(), {f32.data<float>(), size_t(f32.numel())});
      m.buffer_names.push_back(name);
    }
  m.weights = std::move(weights);

  const ParamStore& P = *m.params;
  m.embed = &P.at(kEmbedTokensName);
  m.head.final_norm = &P.at(kFinalNormName);
  m.head.head = c.tie_word_embeddings ? m.embed : &P.at(kLmHeadName);
  for (int l = 0; l < c.num_layers; ++l) {
    m.layers.push_back(bind_layer(P, c, l));
    m.tally_of_layer.push_back(m.layers.back().moe ? int(m.tallies.size()) : -1);
    if (m.layers.back().moe) m.tallies.emplace_back();
  }
  m.saved.resize(size_t(c.num_layers));
  m.gaussian.resize(size_t(c.num_layers));
  m.upload_buffers();

  size_t arena_bytes = options.arena_bytes;
  if (arena_bytes == 0) {
    const cuda::MemoryInfo mem = cuda::memory_info();
    // Leave room for cuBLAS, the CUDA context's own growth and fragmentation.
    const size_t headroom = std::max<size_t>(size_t(1) << 30, mem.total_bytes / 20);
    MF_CHECK(mem.free_bytes > headroom + (size_t(256) << 20), "the model's weights leave ", mem.free_bytes >> 20,
             " MiB of GPU memory free, too little for training activations");
    arena_bytes = mem.free_bytes - headroom;
  }
  m.arena = cuda::DeviceArena(arena_bytes, "training activations");
}

CudaTrainableModel::~CudaTrainableModel() = default;

void CudaTrainableModel::Impl::upload_buffers() {
  for (const std::string& name : buffer_names) {
    const DeviceTensor& d = params->at(name);
    const Tensor& t = weights.tensors.at(name);
    upload({t.data<float>(), size_t(t.numel())}, d.f32);
  }
  buffers_dirty = false;
}

void CudaTrainableModel::Impl::sync_weights_to_host() {
  stream->synchronize("training step");
  for (const DeviceTensor* d : params->trainable()) {
    Tensor& t = weights.tensors.at(d->name);
    download(d->f32, {t.data<float>(), size_t(t.numel())});
  }
}

TrainingLoss CudaTrainableModel::Impl::run(std::span<const int32_t> tokens, std::span<const int32_t> targets, int batch,
                                           const StepOptions& opts, bool backward) {
  const ModelConfig& c = weights.config;
  check_training_batch(tokens, targets, batch);
  MF_CHECK(opts.route_targets.empty() || opts.domain_coef == 0.0f, "train.router_domain_coef (router supervision "
           "from domain labels) runs on the CPU model only so far; train with --device cpu or set it to 0");
  if (buffers_dirty) upload_buffers();
  const int64_t N = int64_t(tokens.size()), T = N / batch, H = c.hidden_size;
  const int64_t D = c.effective_head_dim();
  if (!rope || rope->max_positions() < T) rope = std::make_unique<cuda::DeviceRopeTable>(int(D), int(T), c.rope_theta);
  cuda::ArenaRewind scope(arena);
  DeviceStep d{*blas, *stream, arena};
  const StepInputs in = upload_inputs(d, tokens, targets, T, c.vocab_size);
  const DeviceSequenceBatch sb{batch, T, in.d_positions, rope.get()};
  MoeFfnPass pass;
  pass.training = backward;
  pass.counted = in.d_counted;
  pass.batch = batch;
  pass.per_sequence = opts.lb_per_sequence && batch > 1;  // as the CPU: one sequence is the batch

  std::vector<float*> residual(size_t(c.num_layers) + 1);
  forward_layers(d, sb, pass, in, opts.noise_seed, residual);
  const int64_t norm_tokens = opts.loss_tokens > 0 ? opts.loss_tokens : std::max<int64_t>(1, in.scored.count);
  const float lm_scale = opts.grad_scale / float(norm_tokens);
  BackwardBuffers b;
  if (backward) b = alloc_backward_buffers(arena, N, H);
  const cuda::CrossEntropyTotals* totals =
      lm_head_train(d, c, head, residual.back(), N, in.scored, lm_scale, backward ? &b : nullptr);
  // Read by asynchronous copies from pageable memory: kept until the closing synchronisation.
  cuda::EmbeddingGradPlan embed_plan;
  if (backward) {
    backward_layers(d, sb, pass, {opts.lb_coef, opts.z_coef, opts.grad_scale}, b);
    if (embed->grad) {
      embed_plan = cuda::make_embedding_grad_plan(tokens, c.vocab_size);
      const int32_t* ids = upload_to<int32_t>(arena, embed_plan.ids, "embedding plan", s());
      const int32_t* offs = upload_to<int32_t>(arena, embed_plan.offsets, "embedding plan", s());
      const int32_t* pos = upload_to<int32_t>(arena, embed_plan.positions, "embedding plan", s());
      cuda::embed_rows_backward(ids, offs, pos, embed_plan.unique(), b.dx, H, embed->grad, s());
    }
  }
  return read_results(pass, in, totals, backward);
}

void CudaTrainableModel::Impl::forward_layers(DeviceStep& d, const DeviceSequenceBatch& sb, MoeFfnPass& pass,
                                              const StepInputs& in, uint64_t noise_seed,
                                              std::vector<float*>& residual) {
  const ModelConfig& c = weights.config;
  const int64_t N = sb.rows(), H = c.hidden_size, V = c.vocab_size;
  const size_t NH = size_t(N * H);
  for (auto& r : residual) r = arena.alloc<float>(NH, "residual stream");
  if (embed->trainable)
    cuda::embed_rows(embed->f32, in.d_tokens, N, H, V, residual[0], s());
  else
    cuda::embed_rows(embed->compute, in.d_tokens, N, H, V, residual[0], s());
  for (int l = 0; l < c.num_layers; ++l) {
    const GpuLayer& L = layers[size_t(l)];
    LayerSaved& S = saved[size_t(l)];
    float* x_mid = arena.alloc<float>(NH, "residual (mid-layer)");
    attention_train_forward(d, c, L, sb, residual[size_t(l)], x_mid, S.attn);
    pass.gaussian = {};
    if (pass.training && L.noise) {
      // The step's noise: the CPU's draws for (seed, layer), so both paths route alike.
      std::vector<float>& g = gaussian[size_t(l)];
      g.resize(size_t(N * L.experts.count));
      draw_router_noise(noise_seed, l, g);
      pass.gaussian = g;
    }
    ffn_train_forward(d, c, L, N, pass, x_mid, residual[size_t(l) + 1], S.ffn);
  }
}

void CudaTrainableModel::Impl::backward_layers(DeviceStep& d, const DeviceSequenceBatch& sb, const MoeFfnPass& pass,
                                               const MoeLossCoefs& coefs, const BackwardBuffers& b) {
  const ModelConfig& c = weights.config;
  const AttentionBackwardScratch scratch = alloc_attention_backward(arena, c, sb);
  for (int l = c.num_layers - 1; l >= 0; --l) {
    const size_t mark = arena.mark();  // per-layer backward scratch
    const GpuLayer& L = layers[size_t(l)];
    const LayerSaved& S = saved[size_t(l)];
    ffn_train_backward(d, c, L, sb.rows(), pass, coefs, S.ffn, b);
    attention_train_backward(d, c, L, sb, S.attn, b, scratch);
    arena.rewind(mark);
  }
}

TrainingLoss CudaTrainableModel::Impl::read_results(const MoeFfnPass& pass, const StepInputs& in,
                                                    const cuda::CrossEntropyTotals* totals, bool backward) {
  const ModelConfig& c = weights.config;
  const int64_t N = int64_t(in.counted.size());
  const int slots = moe_slots(c);
  cuda::CrossEntropyTotals lm;
  copy_to_host(&lm, totals, sizeof(lm), "loss download", s());
  // Aux losses of every MoE layer; in training also what the routing statistics read: the clean
  // logits for the entropy (as the CPU's tally reads them, whatever the selection saw), the plan
  // for drops.
  const size_t aux_floats = moe_aux_floats(pass);
  std::vector<std::vector<float>> aux(size_t(c.num_layers)), logits(size_t(c.num_layers));
  std::vector<std::vector<int32_t>> row_of_slot(size_t(c.num_layers));
  for (int l = 0; l < c.num_layers; ++l) {
    const GpuLayer& L = layers[size_t(l)];
    if (!L.moe) continue;
    const MoeSaved& S = saved[size_t(l)].ffn.moe;
    aux[size_t(l)].resize(aux_floats);
    copy_to_host(aux[size_t(l)].data(), S.aux, aux_floats * 4, "aux loss download", s());
    if (!backward) continue;
    logits[size_t(l)].resize(size_t(N * L.experts.count));
    row_of_slot[size_t(l)].resize(size_t(N * slots));
    copy_to_host(logits[size_t(l)].data(), S.logits, logits[size_t(l)].size() * 4, "router logits download", s());
    copy_to_host(row_of_slot[size_t(l)].data(), S.plan.row_of_slot, row_of_slot[size_t(l)].size() * 4,
                 "dispatch plan download", s());
  }
  stream->synchronize(backward ? "training step" : "evaluation step");
  TrainingLoss loss;
  loss.lm_sum = lm.loss_sum;
  loss.lm_tokens = in.scored.count;
  for (int l = 0; l < c.num_layers; ++l) {
    if (!layers[size_t(l)].moe) continue;
    const std::vector<float>& a = aux[size_t(l)];
    double lb = a[0];
    if (pass.per_sequence) {
      lb = 0;  // the mean over sequences, in the CPU's order
      for (int b = 0; b < pass.batch; ++b) lb += double(a[2 + 2 * size_t(b)]) / pass.batch;
    }
    loss.lb += lb;
    loss.z += a[1];
    if (!backward) continue;
    RoutingTally& tally = tallies[size_t(tally_of_layer[size_t(l)])];
    tally.add(plan_counts(c, saved[size_t(l)].ffn.moe, row_of_slot[size_t(l)], N), logits[size_t(l)].data(),
              in.counted.data());
    tally.add_losses(lb, a[1]);
  }
  return loss;
}

TrainingLoss CudaTrainableModel::forward_backward(std::span<const int32_t> tokens, std::span<const int32_t> targets,
                                                  int batch, const StepOptions& opts) {
  MF_CHECK(!opts.recompute, "the CUDA training path does not implement train.recompute (activation recomputation) "
           "yet; train with --device cpu or without it");
  return impl_->run(tokens, targets, batch, opts, true);
}

TrainingLoss CudaTrainableModel::evaluate(std::span<const int32_t> tokens, std::span<const int32_t> targets,
                                          int batch) {
  return impl_->run(tokens, targets, batch, {}, false);
}

const std::vector<RoutingTally>& CudaTrainableModel::routing_stats() const { return impl_->tallies; }

void CudaTrainableModel::reset_routing_stats() {
  for (RoutingTally& t : impl_->tallies) t.reset();
}

bool CudaTrainableModel::update_selection_bias(float rate) {
  Impl& m = *impl_;
  bool any = false;
  for (size_t l = 0; l < m.layers.size(); ++l) {
    const GpuLayer& L = m.layers[l];
    if (!L.moe || !L.selection_bias) continue;
    const RoutingTally& tally = m.tallies[size_t(m.tally_of_layer[l])];
    if (tally.load.empty()) continue;
    any = true;
    mf::update_selection_bias(tally, rate, m.weights.tensors.at(L.selection_bias->name).data<float>());
  }
  m.buffers_dirty = m.buffers_dirty || any;
  return any;
}

std::vector<std::pair<std::string, std::span<float>>> CudaTrainableModel::buffers() {
  std::vector<std::pair<std::string, std::span<float>>> out;
  for (const std::string& name : impl_->buffer_names) {
    Tensor& t = impl_->weights.tensors.at(name);
    out.emplace_back(name, std::span<float>(t.data<float>(), size_t(t.numel())));
  }
  return out;
}

void CudaTrainableModel::buffers_written() { impl_->buffers_dirty = true; }

void CudaTrainableModel::zero_grad() {
  Impl& m = *impl_;
  zero_device(m.params->grads(), size_t(m.params->trainable_count()) * 4, m.s());
}

const ModelConfig& CudaTrainableModel::config() const { return impl_->weights.config; }

const ModelWeights& CudaTrainableModel::weights() {
  impl_->sync_weights_to_host();
  return impl_->weights;
}

std::vector<std::string> CudaTrainableModel::trainable_names() const {
  std::vector<std::string> names;
  for (const DeviceTensor* d : impl_->params->trainable()) names.push_back(d->name);
  return names;
}

std::unique_ptr<Optimizer> CudaTrainableModel::make_optimizer(const OptimizerSpec& spec) {
  return std::make_unique<CudaAdamW>(*impl_->params, *impl_->stream, spec);
}

std::string CudaTrainableModel::device() const { return "cuda:" + std::to_string(impl_->device) + " (" +
                                                   cuda::device_description(impl_->device) + ")"; }

std::vector<float> CudaTrainableModel::grad(const std::string& name) const {
  const DeviceTensor* d = impl_->params->find(name);
  if (!d || !d->grad) return {};
  impl_->stream->synchronize("gradient download");
  std::vector<float> out(static_cast<size_t>(d->numel));
  download(d->grad, out);
  return out;
}

}  // namespace mf::gpu

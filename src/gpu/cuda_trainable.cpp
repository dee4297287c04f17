#include "gpu/cuda_trainable.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/cpu/softmax.h"
#include "gpu/cuda_optimizer.h"
#include "gpu/model_layout.h"
#include "gpu/param_store.h"
#include "kernels/cuda/activation.h"
#include "kernels/cuda/adamw.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/bias.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/gated_add.h"
#include "kernels/cuda/matmul.h"
#include "kernels/cuda/moe_dispatch.h"
#include "kernels/cuda/norm.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/router.h"
#include "kernels/cuda/rows.h"
#include "kernels/cuda/softmax_xent.h"
#include "model/moe_names.h"
#include "moe/routing.h"

namespace mf::gpu {

namespace {

using cuda::bf16;
using cuda::OutType;

// Bytes of LM-head logits computed at once ([rows, vocab] bf16).
constexpr size_t kHeadChunkBytes = size_t(256) << 20;

// The tensors of one decoder layer on the device, and the pointer tables of its experts.
struct GpuLayer {
  const DeviceTensor *attn_norm = nullptr, *ffn_norm = nullptr;
  const DeviceTensor *q = nullptr, *k = nullptr, *v = nullptr, *o = nullptr;
  const DeviceTensor *q_bias = nullptr, *k_bias = nullptr, *v_bias = nullptr, *o_bias = nullptr;  // null: none
  bool moe = false;
  int64_t inter = 0;                                                  // I
  const DeviceTensor *gate = nullptr, *up = nullptr, *down = nullptr;  // dense
  const DeviceTensor *router = nullptr, *selection_bias = nullptr;     // MoE
  const DeviceTensor* noise = nullptr;                                // noisy top-k's W_noise
  // Shared expert (Qwen2-MoE): gate_proj (with up_proj right after it), down_proj, and the
  // optional [1, H] sigmoid gate; null when the layer has none.
  const DeviceTensor *shared_gate_up = nullptr, *shared_down = nullptr, *shared_gate = nullptr;
  int64_t shared_inter = 0;
  int experts = 0;
  std::vector<const bf16*> gate_up_w, down_w;  // expert e's [2I, H] and [H, I] (bf16)
  std::vector<float*> gate_up_g, down_g;       // their gradients (null: frozen)
  int tally = -1;
};

// What one layer's forward keeps for its backward (arena memory of the current call).
struct LayerSaved {
  float *x_in = nullptr, *rstd1 = nullptr, *x_mid = nullptr, *rstd2 = nullptr, *lse = nullptr;
  bf16 *h1 = nullptr, *q = nullptr, *k = nullptr, *v = nullptr, *attn = nullptr, *h2 = nullptr;
  bf16 *gu = nullptr, *hm = nullptr;  // dense: [N, 2I], [N, I]
  // MoE
  float *logits = nullptr, *probs = nullptr, *gates = nullptr, *aux = nullptr;
  float *noise_logits = nullptr, *selection = nullptr, *gaussian = nullptr;  // noisy top-k in training
  int32_t* index = nullptr;
  cuda::DispatchPlanView plan;
  int64_t rows = 0;  // routed rows kept (offsets[E])
  bf16 *xp = nullptr, *gu_p = nullptr, *hm_p = nullptr, *yp = nullptr;
  bf16 *gu_s = nullptr, *hm_s = nullptr, *ys = nullptr;  // shared expert: [N, 2S], [N, S], [N, H]
  float* shared_logits = nullptr;                        // [N] when the shared expert is gated
};

template <class T>
T* upload_to(cuda::DeviceArena& arena, std::span<const T> host, const char* what, cudaStream_t stream) {
  T* device = arena.alloc<T>(std::max<size_t>(host.size(), 1), what);
  if (!host.empty())
    cuda::check(cudaMemcpyAsync(device, host.data(), host.size_bytes(), cudaMemcpyHostToDevice, stream), what);
  return device;
}

void zero(void* device, size_t bytes, cudaStream_t stream) {
  if (bytes) cuda::check(cudaMemsetAsync(device, 0, bytes, stream), "cudaMemsetAsync");
}

void copy_device(void* dst, const void* src, size_t bytes, cudaStream_t stream) {
  if (bytes) cuda::check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream), "cudaMemcpyAsync");
}

}  // namespace

std::string cuda_training_unsupported(const ModelConfig& c) { return cuda_unsupported(c); }

struct CudaTrainable::Impl {
  ModelWeights weights;  // host copy: config, frozen tensors, and the export target of weights()
  int device = 0;
  std::unique_ptr<cuda::Stream> stream;
  std::unique_ptr<cuda::Blas> blas;
  std::unique_ptr<ParamStore> params;
  std::unique_ptr<cuda::DeviceRopeTable> rope;
  cuda::DeviceArena arena;
  const DeviceTensor *embed = nullptr, *final_norm = nullptr, *head = nullptr;
  std::vector<GpuLayer> layers;
  std::vector<LayerSaved> saved;
  std::vector<std::vector<int32_t>> host_offsets;  // per layer: the dispatch plan's offsets, on the host
  std::vector<std::vector<float>> gaussian;        // per layer: noisy top-k's draws of the current step
  std::vector<RoutingTally> tallies;
  std::vector<std::string> buffer_names;           // selection biases (host copies in `weights`)
  bool buffers_dirty = false;

  cudaStream_t s() const { return stream->get(); }
  TrainingLoss run(std::span<const int32_t> tokens, std::span<const int32_t> targets, int batch,
                   const TrainingOptions& opts, bool backward);
  void upload_buffers();
  void sync_weights_to_host();
};

CudaTrainable::CudaTrainable(ModelWeights weights, const std::function<bool(const std::string&)>& frozen,
                             CudaTrainOptions options)
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
    if (name.ends_with(".e_score_correction_bias")) {
      const Tensor f32 = t.dtype() == DType::F32 ? t : t.to_f32();
      t = Tensor::from_f32(f32.shape(), {f32.data<float>(), size_t(f32.numel())});
      m.buffer_names.push_back(name);
    }
  m.weights = std::move(weights);

  const ParamStore& P = *m.params;
  m.embed = &P.at("model.embed_tokens.weight");
  m.final_norm = &P.at("model.norm.weight");
  m.head = c.tie_word_embeddings ? m.embed : &P.at("lm_head.weight");
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = layer_prefix(l);
    GpuLayer L;
    const AttentionTensors at = bind_attention(P, l);
    L.attn_norm = at.attn_norm;
    L.ffn_norm = at.ffn_norm;
    L.q = at.q;
    L.k = at.k;
    L.v = at.v;
    L.o = at.o;
    L.q_bias = P.find(p + "self_attn.q_proj.bias");
    L.k_bias = P.find(p + "self_attn.k_proj.bias");
    L.v_bias = P.find(p + "self_attn.v_proj.bias");
    L.o_bias = P.find(p + "self_attn.o_proj.bias");
    L.moe = c.layer_is_moe(l);
    if (L.moe) {
      const MoeNames names = moe_names(c, l);
      L.router = &P.at(names.router());
      L.selection_bias = P.find(names.selection_bias());
      if (c.routing.policy == RouterPolicy::NoisyTopK) L.noise = &P.at(names.noise());
      L.experts = c.experts_in_layer(l);
      for (int e = 0; e < L.experts; ++e) {
        const DeviceTensor &g = P.at(names.expert(e, 0)), &u = P.at(names.expert(e, 1)), &d = P.at(names.expert(e, 2));
        fused_gate_up(g, u);
        L.inter = g.shape[0];
        L.gate_up_w.push_back(g.compute);
        L.down_w.push_back(d.compute);
        L.gate_up_g.push_back(g.grad);
        L.down_g.push_back(d.grad);
      }
      if (c.shared_expert_intermediate_size > 0) {
        L.shared_gate_up = &P.at(names.shared(0));
        fused_gate_up(*L.shared_gate_up, P.at(names.shared(1)));
        L.shared_down = &P.at(names.shared(2));
        L.shared_gate = P.find(names.shared_gate());
        L.shared_inter = L.shared_gate_up->shape[0];
      }
      L.tally = int(m.tallies.size());
      m.tallies.emplace_back();
    } else {
      L.gate = &P.at(p + "mlp.gate_proj.weight");
      L.up = &P.at(p + "mlp.up_proj.weight");
      L.down = &P.at(p + "mlp.down_proj.weight");
      fused_gate_up(*L.gate, *L.up);
      L.inter = L.gate->shape[0];
    }
    m.layers.push_back(std::move(L));
  }
  m.saved.resize(size_t(c.num_layers));
  m.host_offsets.resize(size_t(c.num_layers));
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

CudaTrainable::~CudaTrainable() = default;

void CudaTrainable::Impl::upload_buffers() {
  for (const std::string& name : buffer_names) {
    const DeviceTensor& d = params->at(name);
    const Tensor& t = weights.tensors.at(name);
    upload({t.data<float>(), size_t(t.numel())}, d.f32);
  }
  buffers_dirty = false;
}

void CudaTrainable::Impl::sync_weights_to_host() {
  stream->synchronize("training step");
  for (const DeviceTensor* d : params->trainable()) {
    Tensor& t = weights.tensors.at(d->name);
    download(d->f32, {t.data<float>(), size_t(t.numel())});
  }
}

TrainingLoss CudaTrainable::Impl::run(std::span<const int32_t> tokens, std::span<const int32_t> targets, int batch,
                                      const TrainingOptions& opts, bool backward) {
  const ModelConfig& c = weights.config;
  MF_CHECK(batch >= 1 && !tokens.empty() && tokens.size() % size_t(batch) == 0, "forward_backward: ", tokens.size(),
           " tokens do not split into ", batch, " equal rows");
  MF_CHECK(targets.size() == tokens.size(), "forward_backward: ", targets.size(), " targets for ", tokens.size(),
           " tokens");
  for (int32_t t : tokens)
    MF_CHECK(t >= 0 && t < c.vocab_size, "forward_backward: token id ", t, " outside the vocabulary of ", c.vocab_size);
  if (buffers_dirty) upload_buffers();
  const cudaStream_t st = s();
  cuda::Blas& B = *blas;
  const int64_t N = int64_t(tokens.size()), T = N / batch, H = c.hidden_size, D = c.effective_head_dim();
  const int64_t qdim = int64_t(c.num_heads) * D, kvdim = int64_t(c.num_kv_heads) * D, V = c.vocab_size;
  const float eps = c.rms_norm_eps, scale = 1.0f / std::sqrt(float(D));
  const bool per_sequence = opts.lb_per_sequence && batch > 1;  // as the CPU: one sequence is the batch
  if (!rope || rope->max_positions() < T) rope = std::make_unique<cuda::DeviceRopeTable>(int(D), int(T), c.rope_theta);
  cuda::ArenaRewind scope(arena);
  cuda::DeviceArena& A = arena;

  std::vector<int32_t> positions(static_cast<size_t>(N));
  std::vector<uint8_t> counted(static_cast<size_t>(N));
  std::vector<int32_t> scored_rows, scored_targets;
  for (int64_t i = 0; i < N; ++i) {
    positions[size_t(i)] = int32_t(i % T);
    counted[size_t(i)] = targets[size_t(i)] >= 0;
    if (targets[size_t(i)] >= 0) {
      MF_CHECK(targets[size_t(i)] < V, "forward_backward: target ", targets[size_t(i)], " outside the vocabulary");
      scored_rows.push_back(int32_t(i));
      scored_targets.push_back(targets[size_t(i)]);
    }
  }
  const int32_t* d_tokens = upload_to<int32_t>(A, tokens, "token ids", st);
  const int32_t* d_positions = upload_to<int32_t>(A, positions, "positions", st);
  const uint8_t* d_counted = upload_to<uint8_t>(A, counted, "loss mask", st);
  const int64_t C = int64_t(scored_rows.size());
  const int32_t* d_scored = upload_to<int32_t>(A, scored_rows, "scored rows", st);
  const int32_t* d_scored_targets = upload_to<int32_t>(A, scored_targets, "targets", st);

  const size_t NH = size_t(N * H);
  std::vector<float*> residual(size_t(c.num_layers) + 1);
  for (auto& r : residual) r = A.alloc<float>(NH, "residual stream");
  if (embed->trainable)
    cuda::embed_rows(embed->f32, d_tokens, N, H, V, residual[0], st);
  else
    cuda::embed_rows(embed->compute, d_tokens, N, H, V, residual[0], st);

  // ------------------------------------------------------------------ forward
  const size_t aux_scratch_bytes = std::max<size_t>(cuda::router_aux_scratch_bytes(N, std::max(1, c.num_experts)), 1);
  void* aux_scratch = c.is_moe() ? A.allocate(aux_scratch_bytes, "router aux scratch") : nullptr;
  void* plan_scratch =
      c.is_moe() ? A.allocate(cuda::plan_dispatch_scratch_bytes(std::max(1, c.num_experts)), "dispatch scratch") : nullptr;
  void* pointer_scratch =
      c.is_moe() ? A.allocate(cuda::grouped_pointer_bytes(std::max(1, c.num_experts)), "grouped GEMM pointers") : nullptr;
  const int slots = c.routing.policy == RouterPolicy::Switch ? 1 : c.top_k;
  for (int l = 0; l < c.num_layers; ++l) {
    const GpuLayer& L = layers[size_t(l)];
    LayerSaved& S = saved[size_t(l)];
    S.x_in = residual[size_t(l)];
    S.rstd1 = A.alloc<float>(size_t(N), "rstd");
    S.h1 = A.alloc<bf16>(NH, "attention input");
    cuda::rmsnorm(S.x_in, L.attn_norm->f32, N, H, eps, S.h1, S.rstd1, st);
    S.q = A.alloc<bf16>(size_t(N * qdim), "q");
    S.k = A.alloc<bf16>(size_t(N * kvdim), "k");
    S.v = A.alloc<bf16>(size_t(N * kvdim), "v");
    cuda::linear_forward(B, S.h1, L.q->compute, S.q, OutType::bf16, N, qdim, H);
    cuda::linear_forward(B, S.h1, L.k->compute, S.k, OutType::bf16, N, kvdim, H);
    cuda::linear_forward(B, S.h1, L.v->compute, S.v, OutType::bf16, N, kvdim, H);
    if (L.q_bias) cuda::add_bias(S.q, L.q_bias->f32, N, qdim, st);
    if (L.k_bias) cuda::add_bias(S.k, L.k_bias->f32, N, kvdim, st);
    if (L.v_bias) cuda::add_bias(S.v, L.v_bias->f32, N, kvdim, st);
    cuda::rope_apply(S.q, N, c.num_heads, int(D), d_positions, *rope, st);
    cuda::rope_apply(S.k, N, c.num_kv_heads, int(D), d_positions, *rope, st);
    S.attn = A.alloc<bf16>(size_t(N * qdim), "attention output");
    S.lse = A.alloc<float>(size_t(N) * size_t(c.num_heads), "attention lse");
    cuda::attention_forward(S.q, S.k, S.v, S.attn, S.lse, batch, int(T), c.num_heads, c.num_kv_heads, int(D), scale,
                            st);
    S.x_mid = A.alloc<float>(NH, "residual (mid-layer)");
    copy_device(S.x_mid, S.x_in, NH * 4, st);
    cuda::linear_forward(B, S.attn, L.o->compute, S.x_mid, OutType::f32, N, H, qdim, 1.0f);
    if (L.o_bias) cuda::add_bias(S.x_mid, L.o_bias->f32, N, H, st);
    S.rstd2 = A.alloc<float>(size_t(N), "rstd");
    S.h2 = A.alloc<bf16>(NH, "FFN input");
    cuda::rmsnorm(S.x_mid, L.ffn_norm->f32, N, H, eps, S.h2, S.rstd2, st);
    float* x_out = residual[size_t(l) + 1];
    copy_device(x_out, S.x_mid, NH * 4, st);
    const int64_t I = L.inter;
    if (!L.moe) {
      S.gu = A.alloc<bf16>(size_t(N * 2 * I), "gate/up");
      S.hm = A.alloc<bf16>(size_t(N * I), "SwiGLU");
      cuda::linear_forward(B, S.h2, L.gate->compute, S.gu, OutType::bf16, N, 2 * I, H);
      cuda::silu_mul(S.gu, S.gu + I, N, I, 2 * I, S.hm, st);
      cuda::linear_forward(B, S.hm, L.down->compute, x_out, OutType::f32, N, H, I, 1.0f);
      continue;
    }
    const int E = L.experts;
    S.logits = A.alloc<float>(size_t(N * E), "router logits");
    S.probs = A.alloc<float>(size_t(N * E), "router probabilities");
    S.index = A.alloc<int32_t>(size_t(N * slots), "expert index");
    S.gates = A.alloc<float>(size_t(N * slots), "gates");
    // aux: [lb, z] over the batch, then with a per-sequence scope [lb, z] of each sequence (the
    // balance loss is then the mean of the sequences' ones; z stays over the batch).
    S.aux = A.alloc<float>(2 + (per_sequence ? 2 * size_t(batch) : 0), "aux losses");
    cuda::linear_forward(B, S.h2, L.router->compute, S.logits, OutType::f32, N, E, H);
    const RouteOptions ro = route_options(c.routing, slots, backward, nullptr);
    const float* selection = S.logits;
    S.noise_logits = S.selection = S.gaussian = nullptr;
    if (backward && L.noise) {
      // The step's noise: the CPU's draws for (seed, layer), so both paths route alike.
      std::vector<float>& g = gaussian[size_t(l)];
      g.resize(size_t(N * E));
      Rng rng(opts.noise_seed * 0x9E3779B97F4A7C15ull + uint64_t(l) + 1);
      for (float& x : g) x = rng.normal();
      S.gaussian = upload_to<float>(A, g, "router noise", st);
      S.noise_logits = A.alloc<float>(size_t(N * E), "noise logits");
      S.selection = A.alloc<float>(size_t(N * E), "noisy selection logits");
      cuda::linear_forward(B, S.h2, L.noise->compute, S.noise_logits, OutType::f32, N, E, H);
      cuda::noisy_logits_forward(S.logits, S.noise_logits, S.gaussian, S.selection, N * E, st);
      selection = S.selection;
    }
    cuda::router_topk_forward(selection, N, E, slots, router_kind(c.routing.policy), ro.renormalize,
                              L.selection_bias ? L.selection_bias->f32 : nullptr, S.probs, S.index, S.gates, st);
    cuda::router_aux_forward(S.logits, S.index, N, E, slots, d_counted, S.aux, aux_scratch, st);
    if (per_sequence)
      for (int b = 0; b < batch; ++b)
        cuda::router_aux_forward(S.logits + b * T * E, S.index + b * T * slots, T, E, slots, d_counted + b * T,
                                 S.aux + 2 + 2 * b, aux_scratch, st);
    S.plan.counts = A.alloc<int32_t>(size_t(E), "plan counts");
    S.plan.offsets = A.alloc<int32_t>(size_t(E) + 1, "plan offsets");
    S.plan.row_of_slot = A.alloc<int32_t>(size_t(N * slots), "plan rows");
    S.plan.slot_of_row = A.alloc<int32_t>(size_t(N * slots), "plan slots");
    // A capacity of every assignment drops nothing; the cap keeps it in the kernel's int.
    const int64_t capacity = std::min<int64_t>(expert_capacity(ro, N, E), N * slots);
    cuda::plan_dispatch(S.index, N, slots, E, int(capacity), S.plan, plan_scratch, st);
    // The grouped GEMM takes its per-expert sizes on the host: one small copy and wait per layer.
    std::vector<int32_t>& offsets = host_offsets[size_t(l)];
    offsets.resize(size_t(E) + 1);
    cuda::check(cudaMemcpyAsync(offsets.data(), S.plan.offsets, offsets.size() * 4, cudaMemcpyDeviceToHost, st),
                "dispatch offsets");
    stream->synchronize("MoE dispatch plan");
    S.rows = offsets.back();
    const size_t R = size_t(std::max<int64_t>(S.rows, 1));
    S.xp = A.alloc<bf16>(R * size_t(H), "permuted FFN input");
    S.gu_p = A.alloc<bf16>(R * size_t(2 * I), "expert gate/up");
    S.hm_p = A.alloc<bf16>(R * size_t(I), "expert SwiGLU");
    S.yp = A.alloc<bf16>(R * size_t(H), "expert outputs");
    cuda::permute_rows(S.h2, S.plan, N, slots, H, S.xp, st);
    const cuda::ExpertGroups gate_up{offsets, L.gate_up_w}, down{offsets, L.down_w};
    cuda::grouped_linear_forward(B, gate_up, S.xp, S.gu_p, OutType::bf16, 2 * I, H, pointer_scratch);
    cuda::silu_mul(S.gu_p, S.gu_p + I, S.rows, I, 2 * I, S.hm_p, st);
    cuda::grouped_linear_forward(B, down, S.hm_p, S.yp, OutType::bf16, H, I, pointer_scratch);
    cuda::combine_rows(S.yp, S.gates, S.plan, N, slots, H, x_out, st);
    if (L.shared_gate_up) {
      const int64_t Sd = L.shared_inter;
      S.gu_s = A.alloc<bf16>(size_t(N * 2 * Sd), "shared gate/up");
      S.hm_s = A.alloc<bf16>(size_t(N * Sd), "shared SwiGLU");
      S.ys = A.alloc<bf16>(NH, "shared expert output");
      cuda::linear_forward(B, S.h2, L.shared_gate_up->compute, S.gu_s, OutType::bf16, N, 2 * Sd, H);
      cuda::silu_mul(S.gu_s, S.gu_s + Sd, N, Sd, 2 * Sd, S.hm_s, st);
      cuda::linear_forward(B, S.hm_s, L.shared_down->compute, S.ys, OutType::bf16, N, H, Sd);
      S.shared_logits = nullptr;
      if (L.shared_gate) {
        S.shared_logits = A.alloc<float>(size_t(N), "shared gate logits");
        cuda::linear_forward(B, S.h2, L.shared_gate->compute, S.shared_logits, OutType::f32, N, 1, H);
      }
      cuda::sigmoid_gated_add(S.ys, S.shared_logits, N, H, x_out, st);
    }
  }
  const float* x_final = residual.back();
  float* rstd_final = A.alloc<float>(size_t(N), "rstd");
  bf16* hf = A.alloc<bf16>(NH, "final norm output");
  cuda::rmsnorm(x_final, final_norm->f32, N, H, eps, hf, rstd_final, st);

  // ------------------------------------------------------------------ head and loss, by row chunks
  const int64_t norm_tokens = opts.loss_tokens > 0 ? opts.loss_tokens : std::max<int64_t>(1, C);
  const float lm_scale = backward ? opts.grad_scale / float(norm_tokens) : 0.0f;
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(std::max<int64_t>(C, 1), int64_t(kHeadChunkBytes / size_t(2 * V))));
  bf16* head_in = A.alloc<bf16>(size_t(chunk * H), "head input");
  bf16* logits = A.alloc<bf16>(size_t(chunk * V), "logits");
  bf16* head_dx = A.alloc<bf16>(size_t(chunk * H), "head input gradient");
  float* row_loss = A.alloc<float>(size_t(std::max<int64_t>(C, 1)), "row losses");
  auto* totals = A.alloc<cuda::CrossEntropyTotals>(1, "loss totals");
  zero(totals, sizeof(cuda::CrossEntropyTotals), st);
  bf16* dhf = backward ? A.alloc<bf16>(NH, "final norm gradient") : nullptr;
  if (backward) zero(dhf, NH * 2, st);
  for (int64_t r0 = 0; r0 < C; r0 += chunk) {
    const int64_t rows = std::min(chunk, C - r0);
    cuda::gather_rows(hf, d_scored + r0, rows, H, head_in, st);
    cuda::linear_forward(B, head_in, head->compute, logits, OutType::bf16, rows, V, H);
    cuda::cross_entropy_forward_backward(logits, d_scored_targets + r0, rows, V, lm_scale, row_loss + r0, st);
    if (!backward) continue;
    if (head->grad) cuda::linear_backward_weight(B, logits, head_in, head->grad, rows, V, H);
    cuda::linear_backward_input(B, logits, head->compute, head_dx, OutType::bf16, rows, V, H);
    cuda::scatter_rows(head_dx, d_scored + r0, rows, H, dhf, st);
  }
  cuda::sum_rows(row_loss, d_scored_targets, C, totals, st);

  // ------------------------------------------------------------------ backward
  // Read by asynchronous copies from pageable memory: kept until the closing synchronisation.
  cuda::EmbeddingGradPlan embed_plan;
  if (backward) {
    float* dx = A.alloc<float>(NH, "residual gradient");
    float* dh = A.alloc<float>(NH, "branch gradient (fp32)");
    bf16* dxb = A.alloc<bf16>(NH, "residual gradient (bf16)");
    bf16* dhb = A.alloc<bf16>(NH, "branch gradient (bf16)");
    void* norm_scratch = A.allocate(cuda::rmsnorm_backward_scratch_bytes(N, H), "rmsnorm backward scratch");
    zero(dx, NH * 4, st);
    cuda::rmsnorm_backward(dhf, x_final, final_norm->f32, rstd_final, N, H, dx, final_norm->grad, norm_scratch, st);
    const size_t attn_scratch_bytes = cuda::attention_backward_scratch_bytes(batch, int(T), c.num_heads, int(D));
    float* attn_scratch = static_cast<float*>(A.allocate(std::max<size_t>(attn_scratch_bytes, 4), "attention scratch"));
    bf16* dq = A.alloc<bf16>(size_t(N * qdim), "dq");
    bf16* dk = A.alloc<bf16>(size_t(N * kvdim), "dk");
    bf16* dv = A.alloc<bf16>(size_t(N * kvdim), "dv");
    bf16* dattn = A.alloc<bf16>(size_t(N * qdim), "d attention output");
    void* bias_scratch = A.allocate(cuda::bias_backward_scratch_bytes(N, std::max(qdim, H)), "bias gradient scratch");
    for (int l = c.num_layers - 1; l >= 0; --l) {
      const GpuLayer& L = layers[size_t(l)];
      LayerSaved& S = saved[size_t(l)];
      const int64_t I = L.inter;
      const size_t mark = A.mark();  // per-layer backward scratch
      // FFN: x_out = x_mid + ffn(rmsnorm(x_mid)); dx holds d x_out.
      cuda::convert_f32_to_bf16(dx, dxb, int64_t(NH), st);
      if (!L.moe) {
        bf16* dhm = A.alloc<bf16>(size_t(N * I), "d SwiGLU");
        bf16* dgu = A.alloc<bf16>(size_t(N * 2 * I), "d gate/up");
        if (L.down->grad) cuda::linear_backward_weight(B, dxb, S.hm, L.down->grad, N, H, I);
        cuda::linear_backward_input(B, dxb, L.down->compute, dhm, OutType::bf16, N, H, I);
        cuda::silu_mul_backward(S.gu, S.gu + I, dhm, N, I, 2 * I, dgu, dgu + I, st);
        if (L.gate->grad) cuda::linear_backward_weight(B, dgu, S.h2, L.gate->grad, N, 2 * I, H);
        cuda::linear_backward_input(B, dgu, L.gate->compute, dhb, OutType::bf16, N, 2 * I, H);
      } else {
        const int E = L.experts;
        const std::vector<int32_t>& offsets = host_offsets[size_t(l)];
        const size_t R = size_t(std::max<int64_t>(S.rows, 1));
        bf16* dyp = A.alloc<bf16>(R * size_t(H), "d expert outputs");
        bf16* dhm_p = A.alloc<bf16>(R * size_t(I), "d expert SwiGLU");
        bf16* dgu_p = A.alloc<bf16>(R * size_t(2 * I), "d expert gate/up");
        bf16* dxp = A.alloc<bf16>(R * size_t(H), "d permuted input");
        float* dgates = A.alloc<float>(size_t(N * slots), "d gates");
        float* dlogits = A.alloc<float>(size_t(N * E), "d router logits");
        bf16* dlogits_b = A.alloc<bf16>(size_t(N * E), "d router logits (bf16)");
        cuda::combine_rows_backward(dx, S.yp, S.gates, S.plan, N, slots, H, dyp, dgates, st);
        const cuda::ExpertGroups gate_up{offsets, L.gate_up_w}, down{offsets, L.down_w};
        cuda::grouped_linear_backward_weight(B, down, L.down_g, dyp, S.hm_p, H, I, pointer_scratch);
        cuda::grouped_linear_backward_input(B, down, dyp, dhm_p, OutType::bf16, H, I, pointer_scratch);
        cuda::silu_mul_backward(S.gu_p, S.gu_p + I, dhm_p, S.rows, I, 2 * I, dgu_p, dgu_p + I, st);
        cuda::grouped_linear_backward_weight(B, gate_up, L.gate_up_g, dgu_p, S.xp, 2 * I, H, pointer_scratch);
        cuda::grouped_linear_backward_input(B, gate_up, dgu_p, dxp, OutType::bf16, 2 * I, H, pointer_scratch);
        zero(dh, NH * 4, st);
        cuda::permute_rows_backward(dxp, S.plan, N, slots, H, dh, st);
        const RouteOptions ro = route_options(c.routing, slots, true, nullptr);
        cuda::router_topk_backward(S.probs, S.index, S.gates, dgates, S.plan.row_of_slot, N, E, slots,
                                   router_kind(c.routing.policy), ro.renormalize, dlogits, st);
        if (S.selection) {
          // selection = z + eps * softplus(u): d z = d selection, d u = d selection * eps * sigmoid(u).
          float* dnoise = A.alloc<float>(size_t(N * E), "d noise logits");
          bf16* dnoise_b = A.alloc<bf16>(size_t(N * E), "d noise logits (bf16)");
          cuda::noisy_logits_backward(dlogits, S.noise_logits, S.gaussian, dnoise, N * E, st);
          cuda::convert_f32_to_bf16(dnoise, dnoise_b, N * E, st);
          if (L.noise->grad) cuda::linear_backward_weight(B, dnoise_b, S.h2, L.noise->grad, N, E, H);
          cuda::linear_backward_input(B, dnoise_b, L.noise->compute, dh, OutType::f32, N, E, H, 1.0f);
        }
        if (!per_sequence) {
          cuda::router_aux_backward(S.logits, S.index, N, E, slots, d_counted, opts.lb_coef, opts.z_coef,
                                    opts.grad_scale, dlogits, aux_scratch, st);
        } else {
          cuda::router_aux_backward(S.logits, S.index, N, E, slots, d_counted, 0.0f, opts.z_coef, opts.grad_scale,
                                    dlogits, aux_scratch, st);
          for (int b = 0; b < batch; ++b)
            cuda::router_aux_backward(S.logits + b * T * E, S.index + b * T * slots, T, E, slots, d_counted + b * T,
                                      opts.lb_coef / float(batch), 0.0f, opts.grad_scale, dlogits + b * T * E,
                                      aux_scratch, st);
        }
        cuda::convert_f32_to_bf16(dlogits, dlogits_b, N * E, st);
        if (L.router->grad) cuda::linear_backward_weight(B, dlogits_b, S.h2, L.router->grad, N, E, H);
        cuda::linear_backward_input(B, dlogits_b, L.router->compute, dh, OutType::f32, N, E, H, 1.0f);
        if (L.shared_gate_up) {
          // x_out += s * shared(h2), s = sigmoid(h2 . w_gate) or 1; dx holds d x_out.
          const int64_t Sd = L.shared_inter;
          bf16* dys = A.alloc<bf16>(NH, "d shared output");
          bf16* dhm_s = A.alloc<bf16>(size_t(N * Sd), "d shared SwiGLU");
          bf16* dgu_s = A.alloc<bf16>(size_t(N * 2 * Sd), "d shared gate/up");
          float* dsl = L.shared_gate ? A.alloc<float>(size_t(N), "d shared gate logits") : nullptr;
          cuda::sigmoid_gated_add_backward(dx, S.ys, S.shared_logits, N, H, dys, dsl, st);
          if (L.shared_down->grad) cuda::linear_backward_weight(B, dys, S.hm_s, L.shared_down->grad, N, H, Sd);
          cuda::linear_backward_input(B, dys, L.shared_down->compute, dhm_s, OutType::bf16, N, H, Sd);
          cuda::silu_mul_backward(S.gu_s, S.gu_s + Sd, dhm_s, N, Sd, 2 * Sd, dgu_s, dgu_s + Sd, st);
          if (L.shared_gate_up->grad)
            cuda::linear_backward_weight(B, dgu_s, S.h2, L.shared_gate_up->grad, N, 2 * Sd, H);
          cuda::linear_backward_input(B, dgu_s, L.shared_gate_up->compute, dh, OutType::f32, N, 2 * Sd, H, 1.0f);
          if (L.shared_gate) {
            bf16* dsl_b = A.alloc<bf16>(size_t(N), "d shared gate logits (bf16)");
            cuda::convert_f32_to_bf16(dsl, dsl_b, N, st);
            if (L.shared_gate->grad) cuda::linear_backward_weight(B, dsl_b, S.h2, L.shared_gate->grad, N, 1, H);
            cuda::linear_backward_input(B, dsl_b, L.shared_gate->compute, dh, OutType::f32, N, 1, H, 1.0f);
          }
        }
        cuda::convert_f32_to_bf16(dh, dhb, int64_t(NH), st);
      }
      cuda::rmsnorm_backward(dhb, S.x_mid, L.ffn_norm->f32, S.rstd2, N, H, dx, L.ffn_norm->grad, norm_scratch, st);
      // Attention: x_mid = x_in + o_proj(attn(rmsnorm(x_in))); dx holds d x_mid.
      cuda::convert_f32_to_bf16(dx, dxb, int64_t(NH), st);
      if (L.o_bias && L.o_bias->grad) cuda::bias_backward(dx, N, H, L.o_bias->grad, bias_scratch, st);
      if (L.o->grad) cuda::linear_backward_weight(B, dxb, S.attn, L.o->grad, N, H, qdim);
      cuda::linear_backward_input(B, dxb, L.o->compute, dattn, OutType::bf16, N, H, qdim);
      cuda::attention_backward(S.q, S.k, S.v, S.attn, dattn, S.lse, dq, dk, dv, attn_scratch, batch, int(T),
                               c.num_heads, c.num_kv_heads, int(D), scale, st);
      cuda::rope_backward(dq, N, c.num_heads, int(D), d_positions, *rope, st);
      cuda::rope_backward(dk, N, c.num_kv_heads, int(D), d_positions, *rope, st);
      if (L.q_bias && L.q_bias->grad) cuda::bias_backward(dq, N, qdim, L.q_bias->grad, bias_scratch, st);
      if (L.k_bias && L.k_bias->grad) cuda::bias_backward(dk, N, kvdim, L.k_bias->grad, bias_scratch, st);
      if (L.v_bias && L.v_bias->grad) cuda::bias_backward(dv, N, kvdim, L.v_bias->grad, bias_scratch, st);
      if (L.q->grad) cuda::linear_backward_weight(B, dq, S.h1, L.q->grad, N, qdim, H);
      if (L.k->grad) cuda::linear_backward_weight(B, dk, S.h1, L.k->grad, N, kvdim, H);
      if (L.v->grad) cuda::linear_backward_weight(B, dv, S.h1, L.v->grad, N, kvdim, H);
      cuda::linear_backward_input(B, dq, L.q->compute, dh, OutType::f32, N, qdim, H);
      cuda::linear_backward_input(B, dk, L.k->compute, dh, OutType::f32, N, kvdim, H, 1.0f);
      cuda::linear_backward_input(B, dv, L.v->compute, dh, OutType::f32, N, kvdim, H, 1.0f);
      cuda::convert_f32_to_bf16(dh, dhb, int64_t(NH), st);
      cuda::rmsnorm_backward(dhb, S.x_in, L.attn_norm->f32, S.rstd1, N, H, dx, L.attn_norm->grad, norm_scratch, st);
      A.rewind(mark);
    }
    if (embed->grad) {
      embed_plan = cuda::make_embedding_grad_plan(tokens, V);
      const int32_t* ids = upload_to<int32_t>(A, embed_plan.ids, "embedding plan", st);
      const int32_t* offs = upload_to<int32_t>(A, embed_plan.offsets, "embedding plan", st);
      const int32_t* pos = upload_to<int32_t>(A, embed_plan.positions, "embedding plan", st);
      cuda::embed_rows_backward(ids, offs, pos, embed_plan.unique(), dx, H, embed->grad, st);
    }
  }

  // ------------------------------------------------------------------ results to the host
  TrainingLoss loss;
  cuda::CrossEntropyTotals lm;
  cuda::check(cudaMemcpyAsync(&lm, totals, sizeof(lm), cudaMemcpyDeviceToHost, st), "loss download");
  const size_t aux_floats = 2 + (per_sequence ? 2 * size_t(batch) : 0);
  std::vector<std::vector<float>> aux_all(size_t(c.num_layers), std::vector<float>(aux_floats));
  for (int l = 0; l < c.num_layers; ++l)
    if (layers[size_t(l)].moe)
      cuda::check(cudaMemcpyAsync(aux_all[size_t(l)].data(), saved[size_t(l)].aux, aux_floats * 4,
                                  cudaMemcpyDeviceToHost, st),
                  "aux loss download");
  // Routing statistics of a training pass: the clean logits for the entropy (as the CPU's tally
  // reads them, whatever the selection saw), the plan for drops.
  std::vector<std::vector<float>> logits_host(size_t(c.num_layers));
  std::vector<std::vector<int32_t>> rows_of_slots(size_t(c.num_layers));
  if (backward)
    for (int l = 0; l < c.num_layers; ++l) {
      const GpuLayer& L = layers[size_t(l)];
      if (!L.moe) continue;
      logits_host[size_t(l)].resize(size_t(N * L.experts));
      rows_of_slots[size_t(l)].resize(size_t(N * slots));
      cuda::check(cudaMemcpyAsync(logits_host[size_t(l)].data(), saved[size_t(l)].logits, logits_host[size_t(l)].size() * 4,
                                  cudaMemcpyDeviceToHost, st),
                  "router logits download");
      cuda::check(cudaMemcpyAsync(rows_of_slots[size_t(l)].data(), saved[size_t(l)].plan.row_of_slot,
                                  rows_of_slots[size_t(l)].size() * 4, cudaMemcpyDeviceToHost, st),
                  "dispatch plan download");
    }
  stream->synchronize(backward ? "training step" : "evaluation step");
  std::vector<std::array<double, 2>> aux(size_t(c.num_layers));
  for (int l = 0; l < c.num_layers; ++l) {
    const std::vector<float>& a = aux_all[size_t(l)];
    aux[size_t(l)] = {a[0], a[1]};
    if (!per_sequence) continue;
    double lb = 0;  // the mean over sequences, in the CPU's order
    for (int b = 0; b < batch; ++b) lb += double(a[2 + 2 * size_t(b)]) / batch;
    aux[size_t(l)][0] = lb;
  }
  loss.lm_sum = lm.loss_sum;
  loss.lm_tokens = C;
  for (int l = 0; l < c.num_layers; ++l) {
    const GpuLayer& L = layers[size_t(l)];
    if (!L.moe) continue;
    loss.lb += aux[size_t(l)][0];
    loss.z += aux[size_t(l)][1];
    if (!backward) continue;
    RoutingTally& tally = tallies[size_t(L.tally)];
    const int E = L.experts;
    const std::vector<int32_t>& offsets = host_offsets[size_t(l)];
    if (tally.load.size() != size_t(E)) tally.load.assign(size_t(E), 0);
    for (int e = 0; e < E; ++e) tally.load[size_t(e)] += offsets[size_t(e) + 1] - offsets[size_t(e)];
    tally.assignments += N * slots;
    tally.dropped += N * slots - offsets.back();
    tally.tokens += N;
    const RouteOptions ro = route_options(c.routing, slots, true, nullptr);
    tally.capacity_slots += expert_capacity(ro, N, E) * E;
    const std::vector<int32_t>& rs = rows_of_slots[size_t(l)];
    std::vector<double> p(static_cast<size_t>(E));
    for (int64_t t = 0; t < N; ++t) {
      bool reached = false;
      for (int s2 = 0; s2 < slots; ++s2) reached |= rs[size_t(t * slots + s2)] >= 0;
      tally.unrouted += !reached;
      if (!counted[size_t(t)]) continue;
      softmax_row_f64(logits_host[size_t(l)].data() + t * E, E, p.data());
      double h = 0;
      for (double q : p)
        if (q > 0) h -= q * std::log(q);
      tally.entropy_sum += h;
      ++tally.entropy_tokens;
    }
    tally.add_losses(aux[size_t(l)][0], aux[size_t(l)][1]);
  }
  return loss;
}

TrainingLoss CudaTrainable::forward_backward(std::span<const int32_t> tokens, std::span<const int32_t> targets,
                                             int batch, const TrainingOptions& opts) {
  return impl_->run(tokens, targets, batch, opts, true);
}

TrainingLoss CudaTrainable::evaluate(std::span<const int32_t> tokens, std::span<const int32_t> targets, int batch) {
  return impl_->run(tokens, targets, batch, {}, false);
}

const std::vector<RoutingTally>& CudaTrainable::routing_stats() const { return impl_->tallies; }

void CudaTrainable::reset_routing_stats() {
  for (RoutingTally& t : impl_->tallies) t.reset();
}

bool CudaTrainable::update_selection_bias(float rate) {
  Impl& m = *impl_;
  bool any = false;
  for (const GpuLayer& L : m.layers) {
    if (!L.moe || !L.selection_bias) continue;
    const RoutingTally& tally = m.tallies[size_t(L.tally)];
    if (tally.load.empty()) continue;
    any = true;
    mf::update_selection_bias(tally, rate, m.weights.tensors.at(L.selection_bias->name).data<float>());
  }
  m.buffers_dirty = m.buffers_dirty || any;
  return any;
}

std::vector<std::pair<std::string, std::span<float>>> CudaTrainable::buffers() {
  std::vector<std::pair<std::string, std::span<float>>> out;
  for (const std::string& name : impl_->buffer_names) {
    Tensor& t = impl_->weights.tensors.at(name);
    out.emplace_back(name, std::span<float>(t.data<float>(), size_t(t.numel())));
  }
  return out;
}

void CudaTrainable::buffers_written() { impl_->buffers_dirty = true; }

void CudaTrainable::zero_grad() {
  Impl& m = *impl_;
  zero(m.params->grads(), size_t(m.params->trainable_count()) * 4, m.s());
}

const ModelConfig& CudaTrainable::config() const { return impl_->weights.config; }

const ModelWeights& CudaTrainable::weights() {
  impl_->sync_weights_to_host();
  return impl_->weights;
}

std::vector<std::string> CudaTrainable::trainable_names() const {
  std::vector<std::string> names;
  for (const DeviceTensor* d : impl_->params->trainable()) names.push_back(d->name);
  return names;
}

std::unique_ptr<Optimizer> CudaTrainable::make_optimizer(const OptimizerSpec& spec) {
  return std::make_unique<CudaAdamW>(*impl_->params, *impl_->stream, spec);
}

std::string CudaTrainable::device() const { return "cuda:" + std::to_string(impl_->device) + " (" +
                                                   cuda::device_description(impl_->device) + ")"; }

std::vector<float> CudaTrainable::grad(const std::string& name) const {
  const DeviceTensor* d = impl_->params->find(name);
  if (!d || !d->grad) return {};
  impl_->stream->synchronize("gradient download");
  std::vector<float> out(static_cast<size_t>(d->numel));
  download(d->grad, out);
  return out;
}

}  // namespace mf::gpu

#include "model/training.h"

#include "core/denormals.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/cpu/activation.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/softmax_xent.h"
#include "model/blocks.h"
#include "model/layer_weights.h"
#include "model/moe_ffn_train.h"
#include "model/moe_names.h"
#include "core/rng.h"

namespace mf {

namespace {

// Rows of the LM head computed at once: bounds the [rows, vocab] logits buffer.
constexpr int64_t kHeadChunk = 256;

std::string layer_prefix(int l) { return "model.layers." + std::to_string(l) + "."; }

struct LayerGrads {
  float *attn_norm = nullptr, *ffn_norm = nullptr;
  float *q = nullptr, *k = nullptr, *v = nullptr, *o = nullptr;
  float *q_bias = nullptr, *k_bias = nullptr, *v_bias = nullptr, *o_bias = nullptr;
  SwigluGrads mlp;
  MoeGrads moe;
};

// Per-step buffers, kept between steps so that a training step allocates nothing once the
// shapes have been seen.
struct StepScratch {
  std::vector<int32_t> positions;
  std::vector<uint8_t> counted;
  std::vector<float> x, tmp, attn, x_final, hf, dx, logits, dh, dtmp, dq, dk, dv, attn_bwd;
  std::vector<float> dmid;
  MoeScratch moe;
  std::vector<float> gaussian;          // noisy top-k draws of one layer
  std::vector<int64_t> head_rows;       // positions with a target, the only ones the head scores
  std::vector<int32_t> head_targets;
  std::vector<float> head_in, head_dx;
};

struct LayerActs {
  std::vector<float> x_in, h1, q, k, v, attn, x_mid, h2;
  SwigluActs mlp;  // dense layers
  MoeActs moe;     // MoE layers
};

const float* bias_or_null(const Tensor& b) { return b.numel() ? b.data<float>() : nullptr; }

// The position of MoE layer l among the model's MoE layers.
int moe_layer_index(const ModelConfig& c, int l) {
  int i = 0;
  for (int j = 0; j < l; ++j) i += c.layer_is_moe(j);
  return i;
}

// A step buffer grown (never shrunk) to n elements; its data.
template <class T>
T* sized(std::vector<T>& v, int64_t n) {
  v.resize(static_cast<size_t>(n));
  return v.data();
}
template <class T>
T* sized(std::vector<T>& v, int64_t n, T fill) {
  v.assign(static_cast<size_t>(n), fill);
  return v.data();
}

// Weight and bias gradients of a linear layer, each only if it trains.
void param_grads(const float* dy, const float* x, int64_t M, int64_t N, int64_t K, float* dweight, float* dbias) {
  if (dweight) {
    linear_backward_weight(dy, x, M, N, K, dweight, dbias);
  } else if (dbias) {
    for (int64_t r = 0; r < M; ++r)
      for (int64_t n = 0; n < N; ++n) dbias[n] += dy[r * N + n];
  }
}

}  // namespace

struct TrainableTransformer::Impl {
  ModelWeights weights;
  TransformerWeights bound;
  std::map<std::string, std::vector<float>> grads;
  std::vector<LayerGrads> layer_grads;
  float *embed_grad = nullptr, *head_grad = nullptr, *final_norm_grad = nullptr;
  std::unique_ptr<RopeTable> rope;
  std::vector<LayerActs> acts;
  StepScratch scratch;
  std::vector<RoutingTally> tallies;   // one per MoE layer
  std::vector<std::string> buffer_names;

  float* grad_of(const std::string& name) {
    auto it = grads.find(name);
    return it == grads.end() ? nullptr : it->second.data();
  }
};

TrainableTransformer::TrainableTransformer(ModelWeights weights, const std::function<bool(const std::string&)>& frozen)
    : impl_(std::make_unique<Impl>()) {
  const ModelConfig& c = weights.config;
  c.validate();
  for (auto& [name, t] : weights.tensors) {
    if (name.ends_with(".e_score_correction_bias")) {
      // A buffer: updated by the balancing rule, not by gradients, so an owned fp32 copy.
      const Tensor f32 = t.dtype() == DType::F32 ? t : t.to_f32();
      t = Tensor::from_f32(f32.shape(), {f32.data<float>(), size_t(f32.numel())});
      impl_->buffer_names.push_back(name);
      continue;
    }
    if (frozen(name)) continue;
    // An owned fp32 master copy: stored tensors may be read-only views of a file mapping.
    const Tensor f32 = t.dtype() == DType::F32 ? t : t.to_f32();
    t = Tensor::from_f32(f32.shape(), {f32.data<float>(), size_t(f32.numel())});
    impl_->grads[name].assign(size_t(t.numel()), 0.0f);
  }
  impl_->weights = std::move(weights);
  impl_->bound = bind_weights(impl_->weights);
  Impl& m = *impl_;
  m.embed_grad = m.grad_of("model.embed_tokens.weight");
  m.final_norm_grad = m.grad_of("model.norm.weight");
  m.head_grad = c.tie_word_embeddings ? m.embed_grad : m.grad_of("lm_head.weight");
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = layer_prefix(l), a = p + "self_attn.";
    LayerGrads g;
    g.attn_norm = m.grad_of(p + "input_layernorm.weight");
    g.ffn_norm = m.grad_of(p + "post_attention_layernorm.weight");
    g.q = m.grad_of(a + "q_proj.weight");
    g.k = m.grad_of(a + "k_proj.weight");
    g.v = m.grad_of(a + "v_proj.weight");
    g.o = m.grad_of(a + "o_proj.weight");
    g.q_bias = m.grad_of(a + "q_proj.bias");
    g.k_bias = m.grad_of(a + "k_proj.bias");
    g.v_bias = m.grad_of(a + "v_proj.bias");
    g.o_bias = m.grad_of(a + "o_proj.bias");
    if (c.layer_is_moe(l)) {
      const MoeNames n = moe_names(c, l);
      g.moe.router = m.grad_of(n.router());
      g.moe.noise = m.grad_of(n.noise());
      for (int e = 0; e < c.experts_in_layer(l); ++e)
        g.moe.experts.push_back({m.grad_of(n.expert(e, 0)), m.grad_of(n.expert(e, 1)), m.grad_of(n.expert(e, 2))});
      g.moe.shared = {m.grad_of(n.shared(0)), m.grad_of(n.shared(1)), m.grad_of(n.shared(2))};
      g.moe.shared_gate = m.grad_of(n.shared_gate());
      m.tallies.emplace_back();
    } else {
      g.mlp = {m.grad_of(p + "mlp.gate_proj.weight"), m.grad_of(p + "mlp.up_proj.weight"),
               m.grad_of(p + "mlp.down_proj.weight")};
    }
    m.layer_grads.push_back(std::move(g));
  }
  m.acts.resize(size_t(c.num_layers));
}

TrainableTransformer::~TrainableTransformer() = default;
TrainableTransformer::TrainableTransformer(TrainableTransformer&&) noexcept = default;
TrainableTransformer& TrainableTransformer::operator=(TrainableTransformer&&) noexcept = default;

const ModelConfig& TrainableTransformer::config() const { return impl_->weights.config; }
const ModelWeights& TrainableTransformer::weights() const { return impl_->weights; }

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
                                                    int batch, const TrainingOptions& opts) {
  return run(tokens, targets, batch, opts, true);
}

TrainingLoss TrainableTransformer::evaluate(std::span<const int32_t> tokens, std::span<const int32_t> targets,
                                            int batch) {
  return run(tokens, targets, batch, {}, false);
}

const std::vector<RoutingTally>& TrainableTransformer::routing_stats() const { return impl_->tallies; }

void TrainableTransformer::reset_routing_stats() {
  for (RoutingTally& t : impl_->tallies) t.reset();
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
                                       const TrainingOptions& opts, bool backward) {
  Impl& m = *impl_;
  const FlushDenormals flush_denormals;
  const ModelConfig& c = m.weights.config;
  MF_CHECK(batch >= 1 && !tokens.empty() && tokens.size() % size_t(batch) == 0, "forward_backward: ", tokens.size(),
           " tokens do not split into ", batch, " equal rows");
  MF_CHECK(targets.size() == tokens.size(), "forward_backward: ", targets.size(), " targets for ", tokens.size(),
           " tokens");
  const int64_t N = int64_t(tokens.size()), T = N / batch, H = c.hidden_size, D = c.effective_head_dim();
  const int64_t qdim = int64_t(c.num_heads) * D, kvdim = int64_t(c.num_kv_heads) * D, V = c.vocab_size;
  MF_CHECK(c.sliding_window <= 0 || T <= c.sliding_window, "forward_backward: sequences of ", T,
           " tokens exceed the sliding window of ", c.sliding_window, " (not supported in training yet)");
  if (!m.rope || m.rope->max_positions() < T) m.rope = std::make_unique<RopeTable>(int(D), int(T), c.rope_theta);
  StepScratch& S = m.scratch;
  int32_t* positions = sized(S.positions, static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) positions[size_t(i)] = int32_t(i % T);
  uint8_t* counted = sized(S.counted, static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) counted[size_t(i)] = targets[size_t(i)] >= 0;
  const float scale = 1.0f / std::sqrt(float(D));

  // ---------------------------------------------------------------- forward
  float* x = sized(S.x, static_cast<size_t>(N * H));
  embed_tokens(m.bound.embed, tokens.data(), N, x);
  float* tmp = sized(S.tmp, static_cast<size_t>(N * std::max(H, qdim)));
  float* attn_scratch = sized(S.attn, attention_scratch_floats(T, T, c.num_heads));
  TrainingLoss loss;
  for (int l = 0; l < c.num_layers; ++l) {
    const LayerWeights& L = m.bound.layers[size_t(l)];
    LayerActs& A = m.acts[size_t(l)];
    A.x_in.assign(x, x + N * H);
    A.h1.resize(size_t(N * H));
    rmsnorm(x, L.attn_norm.data<float>(), N, H, c.rms_norm_eps, A.h1.data());
    A.q.resize(size_t(N * qdim));
    A.k.resize(size_t(N * kvdim));
    A.v.resize(size_t(N * kvdim));
    linear(A.h1.data(), N, H, L.q.w, bias_or_null(L.q_bias), A.q.data());
    linear(A.h1.data(), N, H, L.k.w, bias_or_null(L.k_bias), A.k.data());
    linear(A.h1.data(), N, H, L.v.w, bias_or_null(L.v_bias), A.v.data());
    rope_apply(A.q.data(), N, c.num_heads, positions, *m.rope);
    rope_apply(A.k.data(), N, c.num_kv_heads, positions, *m.rope);
    A.attn.resize(size_t(N * qdim));
    for (int b = 0; b < batch; ++b)
      attention_forward(A.q.data() + b * T * qdim, A.k.data() + b * T * kvdim, A.v.data() + b * T * kvdim, kvdim, T, T,
                        c.num_heads, c.num_kv_heads, int(D), scale, A.attn.data() + b * T * qdim, attn_scratch);
    linear(A.attn.data(), N, qdim, L.o.w, bias_or_null(L.o_bias), tmp);
    add_inplace(x, tmp, N * H);
    A.x_mid.assign(x, x + N * H);
    A.h2.resize(size_t(N * H));
    rmsnorm(x, L.ffn_norm.data<float>(), N, H, c.rms_norm_eps, A.h2.data());
    if (!L.is_moe) {
      const int64_t I = L.mlp.gate.dim(0);
      A.mlp.a.resize(size_t(N * I));
      A.mlp.b.resize(size_t(N * I));
      A.mlp.h.resize(size_t(N * I));
      swiglu_forward(L.mlp, A.h2.data(), N, H, A.mlp.a.data(), A.mlp.b.data(), A.mlp.h.data(), tmp);
      add_inplace(x, tmp, N * H);
      continue;
    }
    // Noise for noisy top-k: a function of (step seed, layer) only.
    std::span<const float> gaussian;
    if (backward && c.routing.policy == RouterPolicy::NoisyTopK) {
      const int64_t NE = N * c.experts_in_layer(l);
      Rng rng(opts.noise_seed * 0x9E3779B97F4A7C15ull + uint64_t(l) + 1);
      float* g = sized(S.gaussian, NE);
      for (int64_t i = 0; i < NE; ++i) g[i] = rng.normal();
      gaussian = {g, size_t(NE)};
    }
    moe_ffn_forward(c, L.moe, A.h2.data(), N, backward, gaussian, A.moe, x);
    MoeLossOptions lo;
    lo.lb_per_sequence = opts.lb_per_sequence;
    lo.batch = batch;
    const MoeAuxLosses aux = moe_aux_losses(A.moe, counted, lo);
    loss.lb += aux.lb;
    loss.z += aux.z;
    if (backward) {
      RoutingTally& tally = m.tallies[size_t(moe_layer_index(c, l))];
      tally.add(A.moe.routing, A.moe.logits.data(), counted);
      tally.add_losses(aux.lb, aux.z);
    }
  }
  S.x_final.assign(x, x + N * H);
  const std::vector<float>& x_final = S.x_final;
  float* hf = sized(S.hf, static_cast<size_t>(N * H));
  rmsnorm(x, m.bound.final_norm.data<float>(), N, H, c.rms_norm_eps, hf);

  // ---------------------------------------------------------------- loss and head, by row chunks
  int64_t counted_tokens = 0;
  for (int64_t i = 0; i < N; ++i) counted_tokens += counted[i];
  loss.lm_tokens = counted_tokens;
  const int64_t norm_tokens = opts.loss_tokens > 0 ? opts.loss_tokens : std::max<int64_t>(1, counted_tokens);
  const float lm_scale = opts.grad_scale / float(norm_tokens);
  std::vector<float>& dx = S.dx;  // gradient of the final norm's output first
  dx.assign(static_cast<size_t>(N * H), 0.0f);
  // The head runs only on positions with a target: instruction data scores answers alone, and
  // the vocabulary projection is the widest matrix of a small model.
  std::vector<int64_t>& scored_rows = S.head_rows;
  scored_rows.clear();
  for (int64_t i = 0; i < N; ++i)
    if (targets[size_t(i)] >= 0) scored_rows.push_back(i);
  const int64_t C = int64_t(scored_rows.size());
  const int64_t chunk = std::min(C, kHeadChunk);
  float* logits = sized(S.logits, chunk * V);
  float* head_in = sized(S.head_in, chunk * H);
  float* head_dx = sized(S.head_dx, chunk * H);
  int32_t* head_targets = sized(S.head_targets, chunk);
  for (int64_t r0 = 0; r0 < C; r0 += kHeadChunk) {
    const int64_t rows = std::min(kHeadChunk, C - r0);
    for (int64_t j = 0; j < rows; ++j) {
      const int64_t i = scored_rows[size_t(r0 + j)];
      std::copy_n(hf + i * H, H, head_in + j * H);
      head_targets[j] = targets[size_t(i)];
    }
    linear(head_in, rows, H, m.bound.head.w, nullptr, logits);
    const CrossEntropySums s = cross_entropy(logits, head_targets, rows, V, lm_scale, backward ? logits : nullptr);
    loss.lm_sum += s.loss_sum;
    if (!backward) continue;
    if (m.head_grad) linear_backward_weight(logits, head_in, rows, V, H, m.head_grad, nullptr);
    linear_backward_input(logits, rows, V, m.bound.head.w, head_dx, false);
    for (int64_t j = 0; j < rows; ++j)
      std::copy_n(head_dx + j * H, H, dx.data() + scored_rows[size_t(r0 + j)] * H);
  }

  if (!backward) return loss;

  // ---------------------------------------------------------------- backward
  float* dh = sized(S.dh, static_cast<size_t>(N * H));
  float* dtmp = sized(S.dtmp, static_cast<size_t>(N * std::max(H, qdim)));
  rmsnorm_backward(x_final.data(), m.bound.final_norm.data<float>(), dx.data(), N, H, c.rms_norm_eps, dx.data(),
                   m.final_norm_grad);
  float* dq = sized(S.dq, static_cast<size_t>(N * qdim));
  float* dk = sized(S.dk, static_cast<size_t>(N * kvdim));
  float* dv = sized(S.dv, static_cast<size_t>(N * kvdim));
  float* attn_bwd_scratch = sized(S.attn_bwd, attention_backward_scratch_floats(T, T));
  for (int l = c.num_layers - 1; l >= 0; --l) {
    const LayerWeights& L = m.bound.layers[size_t(l)];
    LayerGrads& G = m.layer_grads[size_t(l)];
    LayerActs& A = m.acts[size_t(l)];
    // FFN: x_out = x_mid + ffn(rmsnorm(x_mid)); dx holds d x_out.
    if (!L.is_moe) {
      const int64_t I = L.mlp.gate.dim(0);
      float* dmid = sized(S.dmid, static_cast<size_t>(N * I));
      swiglu_backward(L.mlp, G.mlp, A.h2.data(), N, H, A.mlp.a.data(), A.mlp.b.data(), A.mlp.h.data(), dx.data(),
                      dmid, dh, false);
    } else {
      MoeLossOptions lo;
      lo.lb_coef = opts.lb_coef * opts.grad_scale;
      lo.z_coef = opts.z_coef * opts.grad_scale;
      lo.lb_per_sequence = opts.lb_per_sequence;
      lo.batch = batch;
      moe_ffn_backward(c, L.moe, G.moe, A.moe, A.h2.data(), dx.data(), N, counted, lo, S.moe, dh);
    }
    rmsnorm_backward(A.x_mid.data(), L.ffn_norm.data<float>(), dh, N, H, c.rms_norm_eps, dh, G.ffn_norm);
    add_inplace(dx.data(), dh, N * H);  // dx is now d x_mid
    // Attention: x_mid = x_in + o_proj(attn(rmsnorm(x_in))).
    param_grads(dx.data(), A.attn.data(), N, H, qdim, G.o, G.o_bias);
    linear_backward_input(dx.data(), N, H, L.o.w, dtmp, false);  // d attn
    for (int b = 0; b < batch; ++b)
      attention_backward(A.q.data() + b * T * qdim, A.k.data() + b * T * kvdim, A.v.data() + b * T * kvdim, kvdim,
                         dtmp + b * T * qdim, T, T, c.num_heads, c.num_kv_heads, int(D), scale,
                         dq + b * T * qdim, dk + b * T * kvdim, dv + b * T * kvdim,
                         attn_bwd_scratch);
    rope_backward(dq, N, c.num_heads, positions, *m.rope);
    rope_backward(dk, N, c.num_kv_heads, positions, *m.rope);
    param_grads(dq, A.h1.data(), N, qdim, H, G.q, G.q_bias);
    param_grads(dk, A.h1.data(), N, kvdim, H, G.k, G.k_bias);
    param_grads(dv, A.h1.data(), N, kvdim, H, G.v, G.v_bias);
    linear_backward_input(dq, N, qdim, L.q.w, dh, false);
    linear_backward_input(dk, N, kvdim, L.k.w, dh, true);
    linear_backward_input(dv, N, kvdim, L.v.w, dh, true);
    rmsnorm_backward(A.x_in.data(), L.attn_norm.data<float>(), dh, N, H, c.rms_norm_eps, dh, G.attn_norm);
    add_inplace(dx.data(), dh, N * H);  // dx is now d x_in
  }
  if (m.embed_grad) embed_tokens_backward(tokens.data(), N, dx.data(), H, V, m.embed_grad);
  return loss;
}

}  // namespace mf

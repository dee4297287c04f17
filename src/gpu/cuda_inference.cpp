#include "gpu/cuda_inference.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "gpu/model_layout.h"
#include "kernels/cpu/softmax.h"
#include "gpu/param_store.h"
#include "kernels/cuda/activation.h"
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
#include "model/moe_names.h"
#include "moe/routing.h"

namespace mf::gpu {

namespace {

using cuda::bf16;
using cuda::OutType;

struct InferLayer {
  const DeviceTensor *attn_norm = nullptr, *ffn_norm = nullptr, *q = nullptr, *k = nullptr, *v = nullptr,
                     *o = nullptr;
  const DeviceTensor *q_bias = nullptr, *k_bias = nullptr, *v_bias = nullptr, *o_bias = nullptr;  // null: none
  bool moe = false;
  int64_t inter = 0;
  const bf16* gate_up = nullptr;  // dense [2I, H] (gate rows, then up rows)
  const bf16* down = nullptr;
  const DeviceTensor *router = nullptr, *selection_bias = nullptr;
  int experts = 0;
  std::vector<const bf16*> gate_up_w, down_w;
  const bf16 *shared_gate_up = nullptr, *shared_down = nullptr, *shared_gate = nullptr;  // shared expert
  int64_t shared_inter = 0;
};

}  // namespace

std::string cuda_inference_unsupported(const ModelConfig& c) { return cuda_unsupported(c); }

struct CudaInference::Impl {
  ModelConfig config;
  int max_len = 0, max_batch = 0, length = 0;
  std::unique_ptr<cuda::Stream> stream;
  std::unique_ptr<cuda::Blas> blas;
  std::unique_ptr<ParamStore> params;
  std::unique_ptr<cuda::DeviceRopeTable> rope;
  std::vector<InferLayer> layers;
  const DeviceTensor *embed = nullptr, *final_norm = nullptr, *head = nullptr;
  std::vector<cuda::DeviceBuffer> k_cache, v_cache;  // per layer [max_batch, max_len, kvdim]
  cuda::DeviceArena arena;
  std::vector<int32_t> offsets;  // host copy of one MoE layer's dispatch offsets
};

CudaInference::CudaInference(ModelWeights weights, int max_len, int max_batch, int device)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  const ModelConfig& c = weights.config;
  c.validate();
  const std::string unsupported = cuda_inference_unsupported(c);
  MF_CHECK(unsupported.empty(), "the CUDA inference path does not implement ", unsupported, " yet; use --device cpu");
  MF_CHECK(max_len > 0 && max_batch > 0, "CUDA inference: max_len and max_batch must be > 0");
  cuda::require_device(device);
  m.config = c;
  m.max_len = max_len;
  m.max_batch = max_batch;
  m.stream = std::make_unique<cuda::Stream>();
  m.blas = std::make_unique<cuda::Blas>(m.stream->get());
  m.params = std::make_unique<ParamStore>(weights, [](const std::string&) { return true; }, device_layout_order(c));
  weights.tensors.clear();  // the device holds them now
  const ParamStore& P = *m.params;
  m.embed = &P.at("model.embed_tokens.weight");
  m.final_norm = &P.at("model.norm.weight");
  m.head = c.tie_word_embeddings ? m.embed : &P.at("lm_head.weight");
  const int64_t D = c.effective_head_dim(), kvdim = int64_t(c.num_kv_heads) * D;
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = layer_prefix(l);
    InferLayer L;
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
      L.experts = c.experts_in_layer(l);
      for (int e = 0; e < L.experts; ++e) {
        const DeviceTensor& g = P.at(names.expert(e, 0));
        L.inter = g.shape[0];
        L.gate_up_w.push_back(fused_gate_up(g, P.at(names.expert(e, 1))));
        L.down_w.push_back(P.at(names.expert(e, 2)).compute);
      }
      if (c.shared_expert_intermediate_size > 0) {
        const DeviceTensor& g = P.at(names.shared(0));
        L.shared_inter = g.shape[0];
        L.shared_gate_up = fused_gate_up(g, P.at(names.shared(1)));
        L.shared_down = P.at(names.shared(2)).compute;
        if (const DeviceTensor* gate = P.find(names.shared_gate())) L.shared_gate = gate->compute;
      }
    } else {
      const DeviceTensor& g = P.at(p + "mlp.gate_proj.weight");
      L.inter = g.shape[0];
      L.gate_up = fused_gate_up(g, P.at(p + "mlp.up_proj.weight"));
      L.down = P.at(p + "mlp.down_proj.weight").compute;
    }
    m.layers.push_back(std::move(L));
    const size_t cache_bytes = size_t(max_batch) * size_t(max_len) * size_t(kvdim) * 2;
    m.k_cache.emplace_back(cache_bytes, "KV cache (keys)");
    m.v_cache.emplace_back(cache_bytes, "KV cache (values)");
  }
  m.rope = std::make_unique<cuda::DeviceRopeTable>(int(D), max_len, c.rope_theta);
  // Activations of one call: sized for a prefill chunk of the whole cache at full batch, capped.
  const cuda::MemoryInfo mem = cuda::memory_info();
  const size_t headroom = std::max<size_t>(size_t(512) << 20, mem.total_bytes / 20);
  MF_CHECK(mem.free_bytes > headroom + (size_t(64) << 20), "the weights and KV cache leave ", mem.free_bytes >> 20,
           " MiB of GPU memory free, too little to run");
  m.arena = cuda::DeviceArena(std::min(mem.free_bytes - headroom, size_t(8) << 30), "inference activations");
}

CudaInference::~CudaInference() = default;

int CudaInference::cache_length() const { return impl_->length; }
int CudaInference::capacity() const { return impl_->max_len; }
const ModelConfig& CudaInference::config() const { return impl_->config; }

void CudaInference::truncate(int length) {
  MF_CHECK(length >= 0 && length <= impl_->length, "truncate to ", length, " of ", impl_->length, " cached tokens");
  impl_->length = length;  // positions past the length are overwritten by the next forward
}

std::vector<float> CudaInference::forward(std::span<const int32_t> tokens, int batch,
                                          std::vector<std::vector<float>>* router_logits) {
  Impl& m = *impl_;
  const ModelConfig& c = m.config;
  MF_CHECK(batch >= 1 && batch <= m.max_batch, "CUDA forward: batch ", batch, " outside 1..", m.max_batch);
  MF_CHECK(!tokens.empty() && tokens.size() % size_t(batch) == 0, "CUDA forward: ", tokens.size(),
           " tokens do not split into ", batch, " equal rows");
  const int64_t N = int64_t(tokens.size()), T = N / batch, H = c.hidden_size, D = c.effective_head_dim();
  const int64_t qdim = int64_t(c.num_heads) * D, kvdim = int64_t(c.num_kv_heads) * D, V = c.vocab_size;
  const int past = m.length;
  MF_CHECK(past + T <= m.max_len, "CUDA forward: ", past, " cached + ", T, " new tokens exceed the cache of ",
           m.max_len);
  for (int32_t t : tokens) MF_CHECK(t >= 0 && t < V, "token id ", t, " outside the vocabulary of ", V);
  const cudaStream_t st = m.stream->get();
  cuda::Blas& B = *m.blas;
  const float eps = c.rms_norm_eps, scale = 1.0f / std::sqrt(float(D));
  if (router_logits) router_logits->clear();
  cuda::ArenaRewind scope(m.arena);
  cuda::DeviceArena& A = m.arena;

  std::vector<int32_t> positions(static_cast<size_t>(N)), pasts(size_t(batch), past),
      lengths(size_t(batch), int32_t(past + T)), last_rows(static_cast<size_t>(batch));
  for (int64_t i = 0; i < N; ++i) positions[size_t(i)] = int32_t(past + i % T);
  for (int b = 0; b < batch; ++b) last_rows[size_t(b)] = int32_t((b + 1) * T - 1);
  auto upload = [&](const std::vector<int32_t>& host, const char* what) {
    int32_t* d = A.alloc<int32_t>(host.size(), what);
    cuda::check(cudaMemcpyAsync(d, host.data(), host.size() * 4, cudaMemcpyHostToDevice, st), what);
    return d;
  };
  const int32_t* d_tokens = upload(std::vector<int32_t>(tokens.begin(), tokens.end()), "token ids");
  const int32_t* d_positions = upload(positions, "positions");
  const int32_t* d_past = upload(pasts, "cache lengths");
  const int32_t* d_lengths = upload(lengths, "cache lengths");
  const int32_t* d_last = upload(last_rows, "last rows");

  const size_t NH = size_t(N * H);
  float* x = A.alloc<float>(NH, "residual stream");
  bf16* h = A.alloc<bf16>(NH, "normed input");
  bf16* q = A.alloc<bf16>(size_t(N * qdim), "q");
  bf16* k = A.alloc<bf16>(size_t(N * kvdim), "k");
  bf16* v = A.alloc<bf16>(size_t(N * kvdim), "v");
  bf16* attn = A.alloc<bf16>(size_t(N * qdim), "attention output");
  const size_t decode_scratch = cuda::attention_decode_scratch_bytes(batch, m.max_len, c.num_heads, int(D));
  float* attn_scratch = decode_scratch ? static_cast<float*>(A.allocate(decode_scratch, "decode scratch")) : nullptr;
  cuda::embed_rows(m.embed->compute, d_tokens, N, H, V, x, st);
  for (int l = 0; l < c.num_layers; ++l) {
    const InferLayer& L = m.layers[size_t(l)];
    cuda::rmsnorm(x, L.attn_norm->f32, N, H, eps, h, nullptr, st);
    cuda::linear_forward(B, h, L.q->compute, q, OutType::bf16, N, qdim, H);
    cuda::linear_forward(B, h, L.k->compute, k, OutType::bf16, N, kvdim, H);
    cuda::linear_forward(B, h, L.v->compute, v, OutType::bf16, N, kvdim, H);
    if (L.q_bias) cuda::add_bias(q, L.q_bias->f32, N, qdim, st);
    if (L.k_bias) cuda::add_bias(k, L.k_bias->f32, N, kvdim, st);
    if (L.v_bias) cuda::add_bias(v, L.v_bias->f32, N, kvdim, st);
    cuda::rope_apply(q, N, c.num_heads, int(D), d_positions, *m.rope, st);
    cuda::rope_apply(k, N, c.num_kv_heads, int(D), d_positions, *m.rope, st);
    // Append the new keys and values: row b of the batch goes to cache rows past..past+T-1.
    const size_t row_bytes = size_t(kvdim) * 2, pitch = size_t(m.max_len) * row_bytes;
    bf16* kc = m.k_cache[size_t(l)].as<bf16>();
    bf16* vc = m.v_cache[size_t(l)].as<bf16>();
    cuda::check(cudaMemcpy2DAsync(kc + size_t(past) * size_t(kvdim), pitch, k, size_t(T) * row_bytes,
                                  size_t(T) * row_bytes, size_t(batch), cudaMemcpyDeviceToDevice, st),
                "KV cache append (keys)");
    cuda::check(cudaMemcpy2DAsync(vc + size_t(past) * size_t(kvdim), pitch, v, size_t(T) * row_bytes,
                                  size_t(T) * row_bytes, size_t(batch), cudaMemcpyDeviceToDevice, st),
                "KV cache append (values)");
    if (T == 1)
      cuda::attention_decode(q, kc, vc, d_lengths, attn, attn_scratch, batch, m.max_len, c.num_heads, c.num_kv_heads,
                             int(D), scale, st);
    else
      cuda::attention_prefill_cached(q, kc, vc, d_past, attn, batch, int(T), m.max_len, c.num_heads, c.num_kv_heads,
                                     int(D), scale, st);
    cuda::linear_forward(B, attn, L.o->compute, x, OutType::f32, N, H, qdim, 1.0f);
    if (L.o_bias) cuda::add_bias(x, L.o_bias->f32, N, H, st);
    cuda::rmsnorm(x, L.ffn_norm->f32, N, H, eps, h, nullptr, st);
    const int64_t I = L.inter;
    const size_t mark = A.mark();
    if (!L.moe) {
      bf16* gu = A.alloc<bf16>(size_t(N * 2 * I), "gate/up");
      bf16* hm = A.alloc<bf16>(size_t(N * I), "SwiGLU");
      cuda::linear_forward(B, h, L.gate_up, gu, OutType::bf16, N, 2 * I, H);
      cuda::silu_mul(gu, gu + I, N, I, 2 * I, hm, st);
      cuda::linear_forward(B, hm, L.down, x, OutType::f32, N, H, I, 1.0f);
      A.rewind(mark);
      continue;
    }
    const int E = L.experts;
    const int slots = c.routing.policy == RouterPolicy::Switch ? 1 : c.top_k;
    const RouteOptions ro = route_options(c.routing, slots, false, nullptr);
    float* logits = A.alloc<float>(size_t(N * E), "router logits");
    int32_t* index = A.alloc<int32_t>(size_t(N * slots), "expert index");
    float* gates = A.alloc<float>(size_t(N * slots), "gates");
    cuda::DispatchPlanView plan;
    plan.counts = A.alloc<int32_t>(size_t(E), "plan counts");
    plan.offsets = A.alloc<int32_t>(size_t(E) + 1, "plan offsets");
    plan.row_of_slot = A.alloc<int32_t>(size_t(N * slots), "plan rows");
    plan.slot_of_row = A.alloc<int32_t>(size_t(N * slots), "plan slots");
    void* plan_scratch = A.allocate(cuda::plan_dispatch_scratch_bytes(E), "dispatch scratch");
    void* pointers = A.allocate(cuda::grouped_pointer_bytes(E), "grouped GEMM pointers");
    cuda::linear_forward(B, h, L.router->compute, logits, OutType::f32, N, E, H);
    cuda::router_topk_forward(logits, N, E, slots, router_kind(c.routing.policy), ro.renormalize,
                              L.selection_bias ? L.selection_bias->f32 : nullptr, nullptr, index, gates, st);
    cuda::plan_dispatch(index, N, slots, E, int(expert_capacity(ro, N, E)), plan, plan_scratch, st);
    if (router_logits) {
      // Read back with the dispatch offsets below, under the same wait.
      router_logits->emplace_back(size_t(N * E));
      cuda::check(cudaMemcpyAsync(router_logits->back().data(), logits, size_t(N * E) * 4, cudaMemcpyDeviceToHost, st),
                  "router logits download");
    }
    m.offsets.resize(size_t(E) + 1);
    cuda::check(cudaMemcpyAsync(m.offsets.data(), plan.offsets, m.offsets.size() * 4, cudaMemcpyDeviceToHost, st),
                "dispatch offsets");
    m.stream->synchronize("MoE dispatch plan");
    const size_t R = size_t(std::max(m.offsets.back(), 1));
    bf16* xp = A.alloc<bf16>(R * size_t(H), "permuted input");
    bf16* gu = A.alloc<bf16>(R * size_t(2 * I), "expert gate/up");
    bf16* hm = A.alloc<bf16>(R * size_t(I), "expert SwiGLU");
    bf16* yp = A.alloc<bf16>(R * size_t(H), "expert outputs");
    cuda::permute_rows(h, plan, N, slots, H, xp, st);
    const cuda::ExpertGroups gate_up{m.offsets, L.gate_up_w}, down{m.offsets, L.down_w};
    cuda::grouped_linear_forward(B, gate_up, xp, gu, OutType::bf16, 2 * I, H, pointers);
    cuda::silu_mul(gu, gu + I, m.offsets.back(), I, 2 * I, hm, st);
    cuda::grouped_linear_forward(B, down, hm, yp, OutType::bf16, H, I, pointers);
    cuda::combine_rows(yp, gates, plan, N, slots, H, x, st);
    if (L.shared_gate_up) {
      const int64_t Sd = L.shared_inter;
      bf16* gu_s = A.alloc<bf16>(size_t(N * 2 * Sd), "shared gate/up");
      bf16* hm_s = A.alloc<bf16>(size_t(N * Sd), "shared SwiGLU");
      bf16* ys = A.alloc<bf16>(NH, "shared expert output");
      float* shared_logits = L.shared_gate ? A.alloc<float>(size_t(N), "shared gate logits") : nullptr;
      cuda::linear_forward(B, h, L.shared_gate_up, gu_s, OutType::bf16, N, 2 * Sd, H);
      cuda::silu_mul(gu_s, gu_s + Sd, N, Sd, 2 * Sd, hm_s, st);
      cuda::linear_forward(B, hm_s, L.shared_down, ys, OutType::bf16, N, H, Sd);
      if (shared_logits) cuda::linear_forward(B, h, L.shared_gate, shared_logits, OutType::f32, N, 1, H);
      cuda::sigmoid_gated_add(ys, shared_logits, N, H, x, st);
    }
    A.rewind(mark);
  }
  // The head scores only each sequence's last position.
  bf16* hl = A.alloc<bf16>(size_t(batch) * size_t(H), "last positions (normed)");
  float* logits = A.alloc<float>(size_t(batch) * size_t(V), "logits");
  cuda::rmsnorm(x, m.final_norm->f32, N, H, eps, h, nullptr, st);
  cuda::gather_rows(h, d_last, batch, H, hl, st);
  cuda::linear_forward(B, hl, m.head->compute, logits, OutType::f32, batch, V, H);
  std::vector<float> out(size_t(batch) * size_t(V));
  cuda::check(cudaMemcpyAsync(out.data(), logits, out.size() * 4, cudaMemcpyDeviceToHost, st), "logits download");
  m.stream->synchronize("forward");
  m.length = past + int(T);
  return out;
}

namespace {

class CudaLanguageModel final : public LanguageModel {
 public:
  CudaLanguageModel(ModelWeights weights, int max_len) : model_(std::move(weights), max_len, 1) {}
  std::vector<float> forward(std::span<const int32_t> tokens) override {
    const bool tally = tally_ && tokens.size() == 1 && model_.config().is_moe();
    std::vector<float> logits = model_.forward(tokens, 1, tally ? &routes_ : nullptr);
    if (tally) add_routes();
    return logits;
  }
  int cache_length() const override { return model_.cache_length(); }
  void truncate(int length) override { model_.truncate(length); }
  int context_length() const override { return model_.capacity(); }
  int vocab_size() const override { return model_.config().vocab_size; }
  void observe_routes(RouteTally* tally) override {
    tally_ = tally;
    if (!tally_) return;
    const ModelConfig& c = model_.config();
    tally_->experts = c.expert_names;
    for (int e = int(tally_->experts.size()); e < c.num_experts; ++e) tally_->experts.push_back("expert" + std::to_string(e));
    tally_->prob_sum.assign(size_t(c.num_experts), 0.0);
    tally_->tokens = 0;
  }

 private:
  // Each MoE layer's routing probabilities of the decoded token, summed (as the CPU model does).
  void add_routes() {
    for (std::vector<float>& p : routes_) {
      softmax_row(p.data(), int64_t(p.size()));
      for (size_t e = 0; e < p.size(); ++e) tally_->prob_sum[e] += p[e];
    }
    ++tally_->tokens;
  }

  CudaInference model_;
  RouteTally* tally_ = nullptr;
  std::vector<std::vector<float>> routes_;
};

}  // namespace

std::unique_ptr<LanguageModel> make_cuda_language_model(ModelWeights weights, int max_len) {
  return std::make_unique<CudaLanguageModel>(std::move(weights), max_len);
}

}  // namespace mf::gpu

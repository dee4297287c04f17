#include "gpu/cuda_inference.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "gpu/device_step.h"
#include "gpu/layer_binding.h"
#include "gpu/model_layout.h"
#include "gpu/moe_ffn.h"
#include "gpu/swiglu.h"
#include "kernels/cpu/softmax.h"
#include "gpu/param_store.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/bias.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/matmul.h"
#include "kernels/cuda/norm.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/rows.h"
#include "model/tensor_names.h"

namespace mf::gpu {

std::string cuda_inference_unsupported(const ModelConfig& c) { return cuda_unsupported(c); }

struct CudaInference::Impl {
  ModelConfig config;
  int max_len = 0, max_batch = 0, length = 0;
  std::unique_ptr<cuda::Stream> stream;
  std::unique_ptr<cuda::Blas> blas;
  std::unique_ptr<ParamStore> params;
  std::unique_ptr<cuda::DeviceRopeTable> rope;
  std::vector<GpuLayer> layers;
  const DeviceTensor *embed = nullptr, *final_norm = nullptr, *head = nullptr;
  std::vector<cuda::DeviceBuffer> k_cache, v_cache;  // per layer [max_batch, max_len, kvdim]
  cuda::DeviceArena arena;
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
  m.embed = &P.at(kEmbedTokensName);
  m.final_norm = &P.at(kFinalNormName);
  m.head = c.tie_word_embeddings ? m.embed : &P.at(kLmHeadName);
  const int64_t D = c.effective_head_dim(), kvdim = int64_t(c.num_kv_heads) * D;
  for (int l = 0; l < c.num_layers; ++l) {
    m.layers.push_back(bind_layer(P, c, l));
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
  DeviceStep d{B, *m.stream, A};

  std::vector<int32_t> positions(static_cast<size_t>(N)), pasts(size_t(batch), past),
      lengths(size_t(batch), int32_t(past + T)), last_rows(static_cast<size_t>(batch));
  for (int64_t i = 0; i < N; ++i) positions[size_t(i)] = int32_t(past + i % T);
  for (int b = 0; b < batch; ++b) last_rows[size_t(b)] = int32_t((b + 1) * T - 1);
  auto upload = [&](const std::vector<int32_t>& host, const char* what) {
    int32_t* device = A.alloc<int32_t>(host.size(), what);
    cuda::check(cudaMemcpyAsync(device, host.data(), host.size() * 4, cudaMemcpyHostToDevice, st), what);
    return device;
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
  const cuda::AttentionShape shape{batch, int(T), c.num_heads, c.num_kv_heads, int(D), scale};
  const size_t decode_scratch = cuda::attention_decode_scratch_bytes(shape, m.max_len);
  float* attn_scratch = decode_scratch ? static_cast<float*>(A.allocate(decode_scratch, "decode scratch")) : nullptr;
  cuda::embed_rows(m.embed->compute, d_tokens, N, H, V, x, st);
  for (int l = 0; l < c.num_layers; ++l) {
    const GpuLayer& L = m.layers[size_t(l)];
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
      cuda::attention_decode(q, kc, vc, d_lengths, attn, attn_scratch, shape, m.max_len, st);
    else
      cuda::attention_prefill_cached(q, kc, vc, d_past, attn, shape, m.max_len, st);
    cuda::linear_forward(B, attn, L.o->compute, x, OutType::f32, N, H, qdim, 1.0f);
    if (L.o_bias) cuda::add_bias(x, L.o_bias->f32, N, H, st);
    cuda::rmsnorm(x, L.ffn_norm->f32, N, H, eps, h, nullptr, st);
    // The FFN's activations are given back after each layer: nothing is kept for a backward.
    const size_t mark = A.mark();
    if (L.moe) {
      MoeSaved routed;
      moe_ffn_forward(d, c, L, h, N, MoeFfnPass{}, x, routed);
      if (router_logits) {
        // Read back under the forward's closing wait (the copy runs before later work reuses the memory).
        router_logits->emplace_back(size_t(N * L.experts.count));
        copy_to_host(router_logits->back().data(), routed.logits, router_logits->back().size() * 4,
                     "router logits download", st);
      }
    } else {
      SwigluSaved unused;
      swiglu_forward(d, L.mlp, h, N, H, unused, x, OutType::f32, 1.0f);
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
  void observe_routes(DecodeExpertShares* tally) override {
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
  DecodeExpertShares* tally_ = nullptr;
  std::vector<std::vector<float>> routes_;
};

}  // namespace

std::unique_ptr<LanguageModel> make_cuda_language_model(ModelWeights weights, int max_len) {
  return std::make_unique<CudaLanguageModel>(std::move(weights), max_len);
}

}  // namespace mf::gpu

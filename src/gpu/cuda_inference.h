// Inference on an NVIDIA GPU: the Llama-family decoder (dense or MoE) with its KV cache in
// device memory, bf16 weights (any stored dtype, quantized included, dequantized once at load)
// and activations, fp32 residual stream, norms and router math. Prefill and decode of a batch
// of sequences that share one cache length (chat, generation, decode benchmarks).
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "infer/language_model.h"
#include "model/weights.h"

namespace mf::gpu {

class CudaInference {
 public:
  // max_len: cache positions per sequence; max_batch: sequences decoded together. Throws
  // mf::Error when no GPU is usable, for what the CUDA path does not run (named), or when the
  // weights and cache do not fit (asked and free bytes).
  CudaInference(ModelWeights weights, int max_len, int max_batch = 1, int device = 0);
  ~CudaInference();
  CudaInference(const CudaInference&) = delete;
  CudaInference& operator=(const CudaInference&) = delete;

  // Appends tokens [batch, T] (row-major; every sequence at the same cache length) and returns
  // the logits of each sequence's last new position: [batch, vocab] fp32. When router_logits is
  // set, it receives each MoE layer's router logits [batch * T, E] (observation only).
  std::vector<float> forward(std::span<const int32_t> tokens, int batch,
                             std::vector<std::vector<float>>* router_logits = nullptr);
  int cache_length() const;
  void truncate(int length);
  int capacity() const;
  const ModelConfig& config() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// What the CUDA inference path cannot run for this model, or "" when it can.
std::string cuda_inference_unsupported(const ModelConfig& c);

// A one-sequence LanguageModel on the GPU (chat, generate), observing decode routes as the
// CPU's does (chat --show-experts).
std::unique_ptr<LanguageModel> make_cuda_language_model(ModelWeights weights, int max_len);

}  // namespace mf::gpu

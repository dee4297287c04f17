// Everything needed to run a model, loaded from an HF directory or a .gguf file: the
// transformer behind a LanguageModel (with its KV cache), the tokenizer, the chat template
// and the end-of-sequence ids, plus a summary for `moeforge info`.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "chat/chat_template.h"
#include "infer/language_model.h"
#include "model/kv_cache.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"

namespace mf {

struct ModelSummary {
  std::string path, format;           // format: "gguf" | "hf"
  std::string architecture;           // model_type: llama, mistral, qwen2, mixtral, ...
  int layers = 0, hidden = 0, intermediate = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int vocab = 0, context = 0;         // context: the model's max positions
  int64_t params_total = 0, params_active = 0;
  int experts = 0, top_k = 0;
  std::string moe_layout;  // describe_moe(): policy, capacity, shared expert, layer structure
  std::map<std::string, int64_t> weight_dtypes;   // dtype name -> number of tensors
  std::string tokenizer_kind;
  int tokenizer_vocab = 0;
  std::string chat_template_family;   // "none" when the model ships no template
  std::string chat_template_origin;
  size_t decode_packed_bytes = 0;     // copies of Q4_0/Q4_1/Q8_0 matrices packed for decode
  std::string decode_activations = "fp32";  // "fp32" (exact) or "int8"
  std::string kv_cache = "F32";             // the KV cache's element types: "F32", "F16", "F16 keys, F32 values"
};

struct LoadOptions {
  int max_context = 4096;   // KV cache length cap (the model's own limit applies too)
  int threads = 0;          // 0: leave OpenMP's default
  // Pack Q4_0/Q4_1/Q8_0 matrices for decode (Transformer::pack_for_decode): ~2x faster exact
  // decode for a second copy of those weights in memory.
  bool pack_decode = true;
  // ...and multiply them with int8 activations: faster still, but the logits move by a few
  // percent (enough to change a small model's answers). Off: the PyTorch-checked path.
  bool int8_decode = false;
  // The most bytes a MoE's routed experts' packed copies may take (0: no limit); the least
  // recently routed are dropped beyond it and their pages of the file handed back to the kernel
  // (layer_weights.h: pack_for_decode). Bounds a long session's memory for a re-pack per miss.
  size_t expert_cache_bytes = 0;
  // The KV cache's element types (F32: attention exactly as PyTorch; F16/BF16: half the memory
  // and half the bytes read per decoded token). The CUDA model keeps its own cache.
  KVCacheTypes kv_cache;
  // Builds the model on another device from the loaded weights and the context length (the
  // CLI's --device), moving the weights out only when it builds; a null function or a null
  // result (weights left as they were): the CPU Transformer.
  std::function<std::unique_ptr<LanguageModel>(ModelWeights& weights, int max_len)> make_model;
};

struct ModelBundle {
  std::unique_ptr<LanguageModel> model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<ChatTemplate> chat_template;  // the model's, else ChatML (origin says so)
  std::vector<int32_t> eos_ids;
  ModelSummary summary;
  bool has_own_chat_template = false;
};

// The tokenizer is read first, so a directory without one fails fast with a clear error.
ModelBundle load_model_bundle(const std::string& path, const LoadOptions& opts = {});

// The chat template a model runs with: its own `source`, else ChatML; bos/eos token text
// from the tokenizer, as transformers passes them.
std::unique_ptr<ChatTemplate> model_chat_template(const Tokenizer& tok, const std::string& source,
                                                  const std::string& origin);

class Transformer;
// A LanguageModel (one sequence, its own KV cache of max_len tokens) over a Transformer.
std::unique_ptr<LanguageModel> make_language_model(std::unique_ptr<Transformer> transformer, int max_len,
                                                   KVCacheTypes kv_cache = {});
// "F32", "F16", or "F16 keys, F32 values": what a summary and --verbose print.
std::string describe_kv_cache(KVCacheTypes types);

}  // namespace mf

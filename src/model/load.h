// Loading model weights from a Hugging Face directory (config.json + safetensors) or a GGUF
// file into one ModelWeights with HF names.
#pragma once
#include <string>

#include "io/gguf.h"
#include "model/config.h"
#include "model/weights.h"

namespace mf {

// path = HF directory (config.json + safetensors) or a .gguf file. GGUF names are mapped to HF
// names, dims reversed, Q/K rows un-permuted (llama.cpp RoPE layout -> HF), stacked expert
// tensors (ffn_gate_exps etc, 3-D) split into zero-copy per-expert slices, tied embeddings
// handled (config.tie_word_embeddings is set when output.weight is absent).
ModelWeights load_model_weights(const std::string& path);

ModelWeights load_hf_weights(const std::string& dir);
ModelWeights load_gguf_weights(const GgufFile& file);

// llama-arch (and qwen2-arch) metadata -> ModelConfig: llama.block_count, embedding_length,
// feed_forward_length, attention.head_count(_kv), rope.freq_base,
// attention.layer_norm_rms_epsilon, context_length, expert_count, expert_used_count; vocab
// from tokenizer.ggml.tokens; tied when output.weight is absent.
ModelConfig config_from_gguf(const GgufFile& file);

}  // namespace mf

// Transformer: a Llama-family decoder (dense or MoE) running on the CPU kernels, appending
// tokens to a KVCache and returning logits. Dense and MoE layers share one code path.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "kernels/cpu/matmul.h"
#include "model/weights.h"

namespace mf {

struct ForwardOptions {
  bool all_logits = false;                       // false: only the last position of each sequence
  std::vector<Tensor>* router_logits = nullptr;  // if set: one [batch*T, E] F32 tensor per MoE layer
  // Observation only (the logits do not change): per layer, a [batch*T, H] F32 copy of
  std::vector<Tensor>* layer_inputs = nullptr;   // the residual stream entering the layer
  std::vector<Tensor>* ffn_inputs = nullptr;     // the FFN's normed input (what a router reads)
  // Which cache sequence each batch row appends to (continuous batching: the active slots of a
  // server's cache, in any order, each at most once); empty: rows 0..batch-1.
  std::span<const int> cache_slots;
  // Tokens of each batch row, in order (a server step: one token for each decoding sequence,
  // then whole prompt chunks); empty: batch rows of equal length. Sum = tokens.size().
  std::span<const int> lengths;
};

class Transformer {
 public:
  // Validates every expected tensor's name and shape (mf::Error names the tensor).
  explicit Transformer(ModelWeights weights);
  ~Transformer();
  Transformer(Transformer&&) noexcept;
  Transformer& operator=(Transformer&&) noexcept;

  const ModelConfig& config() const;
  const ModelWeights& weights() const;

  // Gives every Q4_0/Q4_1/Q8_0 matrix a copy packed for decode steps (<= 8 rows per forward;
  // prefill keeps the stored layout): with fp32 activations the logits stay exact and decode
  // is ~2x faster; with int8 activations (llama.cpp's scheme) faster still, but the logits
  // move by a few percent. Off by default. May be called again to switch activations.
  // Returns the bytes the packed copies take (0 when no matrix qualifies or the CPU lacks
  // AVX-512 VNNI).
  // expert_budget_bytes: the most the routed experts' packed copies may take (0: no limit);
  // layer_weights.h says how.
  size_t pack_for_decode(DecodeActivations activations = DecodeActivations::fp32, size_t expert_budget_bytes = 0);
  // The routed experts' packed copies (sizes, packings, drops); null before pack_for_decode.
  const PackedCopies* expert_copies() const;

  // Appends `tokens` (batch rows one after another: of equal length, or of opts.lengths) to the
  // cache and returns logits: [tokens, vocab] if all_logits else [batch, vocab] (each row's last
  // position). Sequences may have different cached lengths; opts.cache_slots maps rows to
  // sequences. Activation buffers are reused across calls of the same (tokens, longest row,
  // cache capacity).
  Tensor forward(std::span<const int32_t> tokens, int batch, KVCache& cache, const ForwardOptions& opts = {});

  // The most tokens one forward may carry with every row's logits what they are in any smaller
  // forward (layer_weights.h: batch_invariant_rows); it changes when pack_for_decode runs.
  int64_t batch_invariant_rows() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mf

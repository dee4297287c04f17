#include "model/transformer.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/rope.h"
#include "model/blocks.h"
#include "model/layer_weights.h"
#include "model/workspace.h"

namespace mf {

struct Transformer::Impl {
  ModelWeights weights;
  TransformerWeights bound;
  std::unique_ptr<RopeTable> rope;  // grown to the longest cache seen
  Workspace ws;

  const ModelConfig& config() const { return weights.config; }

  void prepare(int64_t N, int64_t T, const KVCache& cache) {
    const ModelConfig& c = config();
    if (!rope || rope->max_positions() < cache.capacity())
      rope = std::make_unique<RopeTable>(c.effective_head_dim(), cache.capacity(), c.rope_theta);
    if (ws.tokens != N || ws.per_seq != T || ws.capacity != cache.capacity()) ws = Workspace(c, N, T, cache.capacity());
  }
};

Transformer::Transformer(ModelWeights weights) : impl_(std::make_unique<Impl>()) {
  impl_->weights = std::move(weights);
  impl_->bound = bind_weights(impl_->weights);
}

Transformer::~Transformer() = default;
Transformer::Transformer(Transformer&&) noexcept = default;
Transformer& Transformer::operator=(Transformer&&) noexcept = default;

const ModelConfig& Transformer::config() const { return impl_->config(); }
const ModelWeights& Transformer::weights() const { return impl_->weights; }

size_t Transformer::pack_for_decode(DecodeActivations activations, size_t expert_budget_bytes) {
  return mf::pack_for_decode(impl_->bound, activations, expert_budget_bytes);
}

const PackedCopies* Transformer::expert_copies() const { return impl_->bound.expert_copies.get(); }

int64_t Transformer::batch_invariant_rows() const { return mf::batch_invariant_rows(impl_->bound); }

Tensor Transformer::forward(std::span<const int32_t> tokens, int batch, KVCache& cache, const ForwardOptions& opts) {
  const ModelConfig& c = config();
  MF_CHECK(batch >= 1 && batch <= cache.batch(), "forward: batch ", batch, " must be in [1, ", cache.batch(),
           "] (the KV cache's batch)");
  MF_CHECK(cache.layers() == c.num_layers && cache.kv_dim() == int64_t(c.num_kv_heads) * c.effective_head_dim(),
           "forward: the KV cache was made for a different model config");
  std::vector<int> lengths(opts.lengths.begin(), opts.lengths.end());
  if (lengths.empty()) {
    MF_CHECK(!tokens.empty() && tokens.size() % size_t(batch) == 0, "forward: ", tokens.size(),
             " tokens do not split into ", batch, " equal non-empty rows");
    lengths.assign(size_t(batch), int(tokens.size() / size_t(batch)));
  }
  MF_CHECK(int(lengths.size()) == batch, "forward: ", lengths.size(), " row lengths for a batch of ", batch);
  int64_t N = 0, T = 0;
  for (int len : lengths) {
    MF_CHECK(len >= 1, "forward: a batch row has ", len, " tokens");
    N += len;
    T = std::max<int64_t>(T, len);
  }
  MF_CHECK(N == int64_t(tokens.size()), "forward: row lengths add up to ", N, ", not the ", tokens.size(), " tokens");
  const int64_t H = c.hidden_size;
  std::vector<int> slots(opts.cache_slots.begin(), opts.cache_slots.end());
  if (slots.empty())
    for (int b = 0; b < batch; ++b) slots.push_back(b);
  MF_CHECK(int(slots.size()) == batch, "forward: ", slots.size(), " cache slots for a batch of ", batch);
  std::vector<bool> used(size_t(cache.batch()), false);
  for (int b = 0; b < batch; ++b) {
    const int s = slots[size_t(b)];
    MF_CHECK(s >= 0 && s < cache.batch() && !used[size_t(s)], "forward: cache slot ", s,
             " is out of range or given twice (the cache has ", cache.batch(), ")");
    used[size_t(s)] = true;
    MF_CHECK(cache.length(s) + lengths[size_t(b)] <= cache.capacity(), "forward: sequence ", s, " has ",
             cache.length(s), " cached tokens; ", lengths[size_t(b)], " more exceed the KV cache capacity of ",
             cache.capacity());
  }
  impl_->prepare(N, T, cache);
  Workspace& ws = impl_->ws;
  const TransformerWeights& w = impl_->bound;

  for (int b = 0, row = 0; b < batch; ++b)
    for (int t = 0; t < lengths[size_t(b)]; ++t) ws.positions[size_t(row++)] = int32_t(cache.length(slots[size_t(b)]) + t);
  embed_tokens(w.embed, tokens.data(), N, ws.x.data());
  for (auto* v : {opts.router_logits, opts.layer_inputs, opts.ffn_inputs})
    if (v) v->clear();
  for (int l = 0; l < c.num_layers; ++l) {
    if (opts.layer_inputs) opts.layer_inputs->push_back(Tensor::from_f32({N, H}, {ws.x.data(), size_t(N * H)}));
    attention_block(c, w.layers[size_t(l)], l, lengths, *impl_->rope, cache, slots, ws);
    ffn_block(c, w.layers[size_t(l)], ws, opts.router_logits, opts.ffn_inputs);
  }
  for (int b = 0; b < batch; ++b) cache.set_length(slots[size_t(b)], cache.length(slots[size_t(b)]) + lengths[size_t(b)]);

  // Only the rows whose logits are wanted go through the final norm and the head.
  int64_t rows = N;
  if (!opts.all_logits) {
    rows = batch;
    for (int b = 0, end = 0; b < batch; ++b) {
      end += lengths[size_t(b)];
      std::memcpy(ws.out.data() + b * H, ws.x.data() + int64_t(end - 1) * H, size_t(H) * sizeof(float));
    }
  } else {
    std::copy(ws.x.begin(), ws.x.end(), ws.out.begin());
  }
  rmsnorm(ws.out.data(), w.final_norm.data<float>(), rows, H, c.rms_norm_eps, ws.h.data());
  Tensor logits = Tensor::empty(DType::F32, {rows, int64_t(c.vocab_size)});
  linear(ws.h.data(), rows, H, w.head, nullptr, logits.data<float>());
  return logits;
}

}  // namespace mf

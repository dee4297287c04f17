// Weight binding over model/tensor_names.h, so the HF, Mixtral and Qwen2-MoE layouts share one
// binder. Bound tensors share the model's storage (a tied head is the embedding itself); only
// norms and biases not stored as fp32 are converted. Experts are checked against expert 0 first.
#include "model/layer_weights.h"

#include <algorithm>
#include <array>
#include <limits>

#include "core/error.h"
#include "model/tensor_names.h"

namespace mf {
namespace {

class Binder {
 public:
  explicit Binder(const ModelWeights& w) : w_(w) {}

  const Tensor& find(const std::string& name) const {
    auto it = w_.tensors.find(name);
    MF_CHECK(it != w_.tensors.end(), where(), "missing tensor '", name, "'");
    return it->second;
  }
  bool has(const std::string& name) const { return w_.tensors.count(name) != 0; }

  Tensor matrix(const std::string& name, int64_t rows, int64_t cols) const {
    const Tensor& t = find(name);
    check_shape(name, t, {rows, cols});
    return t;
  }
  Tensor vector_f32(const std::string& name, int64_t n) const {
    const Tensor& t = find(name);
    check_shape(name, t, {n});
    return t.dtype() == DType::F32 ? t : t.to_f32();
  }
  Tensor optional_vector_f32(const std::string& name, int64_t n) const {
    return has(name) ? vector_f32(name, n) : Tensor::empty(DType::F32, {0});
  }
  // Names in gate, up, down order.
  SwigluWeights swiglu(const std::array<std::string, 3>& names, int64_t H, int64_t I) const {
    return {matrix(names[0], I, H), matrix(names[1], I, H), matrix(names[2], H, I)};
  }
  void check_shape(const std::string& name, const Tensor& t, const Shape& want) const {
    MF_CHECK(t.shape() == want, where(), "tensor '", name, "' has shape ", shape_str(t.shape()), ", expected ",
             shape_str(want));
  }
  std::string where() const { return w_.source.empty() ? std::string() : w_.source + ": "; }

 private:
  const ModelWeights& w_;
};

// Experts are looked up by the first expert's shape so that a mismatch names both tensors.
void check_experts_agree(const Binder& b, const std::vector<SwigluWeights>& experts, const std::string& prefix,
                         const char* const names[3]) {
  for (size_t e = 1; e < experts.size(); ++e) {
    const Tensor* mine[3] = {&experts[e].gate.w, &experts[e].up.w, &experts[e].down.w};
    const Tensor* first[3] = {&experts[0].gate.w, &experts[0].up.w, &experts[0].down.w};
    for (int i = 0; i < 3; ++i)
      MF_CHECK(mine[i]->shape() == first[i]->shape(), b.where(), "expert shapes differ: '", prefix, e, ".",
               names[i], ".weight' has shape ", shape_str(mine[i]->shape()), " but '", prefix, "0.", names[i],
               ".weight' has ", shape_str(first[i]->shape()));
  }
}

MoeWeights bind_moe(const Binder& b, const ModelConfig& c, int layer, int64_t H) {
  const MoeNames n = moe_names(c, layer);
  const char* const* names = n.leaves.data();
  const int64_t I = c.expert_intermediate_size();
  const int E = c.experts_in_layer(layer);
  MoeWeights m;
  m.router = b.matrix(n.router(), E, H);
  if (c.routing.policy == RouterPolicy::NoisyTopK) m.noise = b.matrix(n.noise(), E, H);
  if (c.router_selection_bias) m.selection_bias = b.vector_f32(n.selection_bias(), E);
  const std::string ep = n.prefix + "experts.";
  std::vector<SwigluWeights> raw;
  for (int e = 0; e < E; ++e) raw.push_back({b.find(n.expert(e, 0)), b.find(n.expert(e, 1)), b.find(n.expert(e, 2))});
  check_experts_agree(b, raw, ep, names);
  for (int e = 0; e < E; ++e) m.experts.push_back(b.swiglu({n.expert(e, 0), n.expert(e, 1), n.expert(e, 2)}, H, I));
  if (c.shared_expert_intermediate_size > 0) {
    const int64_t Is = c.shared_expert_intermediate_size;  // the shared expert's width
    m.has_shared = true;
    m.shared = b.swiglu({n.shared(0), n.shared(1), n.shared(2)}, H, Is);
    if (c.shared_expert_gated) m.shared_gate = b.matrix(n.shared_gate(), 1, H);
  }
  return m;
}

}  // namespace

TransformerWeights bind_weights(const ModelWeights& w) {
  const ModelConfig& c = w.config;
  c.validate();
  Binder b(w);
  const int64_t H = c.hidden_size, D = c.effective_head_dim();
  const int64_t qdim = int64_t(c.num_heads) * D, kvdim = int64_t(c.num_kv_heads) * D;
  TransformerWeights t;
  t.embed = b.matrix(kEmbedTokensName, c.vocab_size, H);
  t.final_norm = b.vector_f32(kFinalNormName, H);
  t.head = c.tie_word_embeddings ? t.embed : b.matrix(kLmHeadName, c.vocab_size, H);
  for (int l = 0; l < c.num_layers; ++l) {
    const LayerNames n = layer_names(l);
    LayerWeights L;
    L.attn_norm = b.vector_f32(n.attn_norm(), H);
    L.ffn_norm = b.vector_f32(n.ffn_norm(), H);
    L.q = b.matrix(n.attn('q'), qdim, H);
    L.k = b.matrix(n.attn('k'), kvdim, H);
    L.v = b.matrix(n.attn('v'), kvdim, H);
    L.o = b.matrix(n.attn('o'), H, qdim);
    if (c.attention_bias) {
      L.q_bias = b.vector_f32(n.attn_bias('q'), qdim);
      L.k_bias = b.vector_f32(n.attn_bias('k'), kvdim);
      L.v_bias = b.vector_f32(n.attn_bias('v'), kvdim);
    } else {
      L.q_bias = b.optional_vector_f32(n.attn_bias('q'), qdim);
      L.k_bias = b.optional_vector_f32(n.attn_bias('k'), kvdim);
      L.v_bias = b.optional_vector_f32(n.attn_bias('v'), kvdim);
    }
    L.o_bias = b.optional_vector_f32(n.attn_bias('o'), H);
    L.is_moe = c.layer_is_moe(l);
    if (L.is_moe)
      L.moe = bind_moe(b, c, l, H);
    else
      L.mlp = b.swiglu({n.mlp(kMlpGate), n.mlp(kMlpUp), n.mlp(kMlpDown)}, H, c.intermediate_size);
    t.layers.push_back(std::move(L));
  }
  return t;
}

namespace {

size_t pack(LinearWeight& m, DecodeActivations activations) {
  if (!PackedQuantMatrix::supports(m.w)) return 0;
  const size_t added = m.packed ? 0 : (m.packed = std::make_shared<const PackedQuantMatrix>(m.w))->bytes();
  m.activations = activations;
  return added;
}

size_t pack(SwigluWeights& s, DecodeActivations a) { return pack(s.gate, a) + pack(s.up, a) + pack(s.down, a); }

// A routed expert is packed the first time a token is routed to it: a run that never routes to
// an expert never packs it, nor reads its pages of a memory-mapped file. Returns the bytes it may
// come to.
size_t pack_on_demand(LinearWeight& m, DecodeActivations activations, const std::shared_ptr<PackedCopies>& copies) {
  if (!PackedQuantMatrix::supports(m.w) || m.packed) return 0;
  m.activations = activations;  // a second call switches the activations, as pack() does
  if (m.packed_on_demand) return 0;
  m.packed_on_demand = std::make_shared<PackedOnDemand>(copies);
  return m.w.nbytes();  // the packed copy holds the same quantized blocks, rearranged
}

size_t pack_on_demand(SwigluWeights& s, DecodeActivations a, const std::shared_ptr<PackedCopies>& copies) {
  return pack_on_demand(s.gate, a, copies) + pack_on_demand(s.up, a, copies) + pack_on_demand(s.down, a, copies);
}

}  // namespace

int64_t batch_invariant_rows(const TransformerWeights& w) {
  int64_t rows = std::numeric_limits<int64_t>::max();
  auto take = [&rows](const LinearWeight& m) {
    const bool packed = m.packed || m.packed_on_demand;
    rows = std::min(rows, !packed ? kLinearGemvMaxRows
                          : m.activations == DecodeActivations::int8 ? kLinearPackedInt8MaxRows
                                                                     : kLinearPackedMaxRows);
  };
  auto take_mlp = [&take](const SwigluWeights& s) {
    take(s.gate);
    take(s.up);
    take(s.down);
  };
  take(w.head);
  for (const LayerWeights& L : w.layers) {
    for (const LinearWeight* m : {&L.q, &L.k, &L.v, &L.o}) take(*m);
    if (L.is_moe) {
      for (const SwigluWeights& e : L.moe.experts) take_mlp(e);
      if (L.moe.has_shared) take_mlp(L.moe.shared);
    } else {
      take_mlp(L.mlp);
    }
  }
  return rows;
}

size_t pack_for_decode(TransformerWeights& w, DecodeActivations a, size_t expert_budget_bytes) {
  if (!w.expert_copies) w.expert_copies = std::make_shared<PackedCopies>(expert_budget_bytes);
  size_t bytes = pack(w.head, a), expert_bytes = 0;
  for (LayerWeights& L : w.layers) {
    bytes += pack(L.q, a) + pack(L.k, a) + pack(L.v, a) + pack(L.o, a);
    if (L.is_moe) {
      for (SwigluWeights& e : L.moe.experts) expert_bytes += pack_on_demand(e, a, w.expert_copies);
      if (L.moe.has_shared) bytes += pack(L.moe.shared, a);
    } else {
      bytes += pack(L.mlp, a);
    }
  }
  const size_t budget = w.expert_copies->budget_bytes();
  return bytes + (budget ? std::min(budget, expert_bytes) : expert_bytes);
}

}  // namespace mf

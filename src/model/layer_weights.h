// The transformer's weights bound by role, checked once at construction: every expected
// tensor present with the expected shape, norms and biases converted to fp32, matrices left
// in their stored dtype for the `linear` kernel.
#pragma once
#include <vector>

#include "core/tensor.h"
#include "kernels/cpu/matmul.h"
#include "model/weights.h"

namespace mf {

struct SwigluWeights {             // down(silu(gate(x)) * up(x))
  LinearWeight gate, up, down;     // [I, H], [I, H], [H, I]
};

struct MoeWeights {
  Tensor router;                        // [E, H]; always the exact path (routing decisions)
  Tensor noise;                         // noisy_topk: [E, H] noise projection; else empty
  Tensor selection_bias;                // F32 [E] when the config has one; else empty
  std::vector<SwigluWeights> experts;   // E of them, all the same shape
  bool has_shared = false;              // shared expert every token uses
  SwigluWeights shared;
  Tensor shared_gate;                   // [1, H]: sigmoid gate of the shared expert; empty: ungated
  int num_experts() const { return int(experts.size()); }
  // Optional tensors are default-constructed (no data) when absent.
  bool shared_is_gated() const { return shared_gate.raw() != nullptr; }
  const float* selection_bias_or_null() const {
    return selection_bias.raw() ? selection_bias.data<float>() : nullptr;
  }
};

struct LayerWeights {
  Tensor attn_norm, ffn_norm;           // F32 [H]
  LinearWeight q, k, v, o;              // [nH*D, H], [nKV*D, H], [nKV*D, H], [H, nH*D]
  Tensor q_bias, k_bias, v_bias, o_bias;  // F32, empty (numel 0) when absent
  bool is_moe = false;
  SwigluWeights mlp;                    // dense layers
  MoeWeights moe;                       // MoE layers
};

struct TransformerWeights {
  Tensor embed;                         // [V, H], any dequantizable dtype
  Tensor final_norm;                    // F32 [H]
  LinearWeight head;                    // [V, H] (the embedding when tied)
  std::vector<LayerWeights> layers;
  std::shared_ptr<PackedCopies> expert_copies;  // the routed experts' packed copies (pack_for_decode)
};

// Throws mf::Error naming the tensor, the expected and the actual shape (or that it is
// missing, or that experts of one layer disagree in shape).
TransformerWeights bind_weights(const ModelWeights& w);

// Gives every Q4_0/Q4_1/Q8_0 matrix (attention, MLP, experts, head; not the routers, which
// stay on the stored layout) a copy packed for decode, multiplied with `activations`. A MoE's
// routed experts are packed the first time a token is routed to them (PackedOnDemand), so an
// expert no token picks costs neither a copy nor a read of its pages; with expert_budget_bytes
// (0: no limit) the least recently routed experts' copies are dropped to stay under it and made
// again when routed to. Returns the bytes the packed copies may take.
size_t pack_for_decode(TransformerWeights& w, DecodeActivations activations, size_t expert_budget_bytes = 0);

// The most rows a forward may carry with each row's result what it would be in any smaller
// forward: every matrix's kernel for that many rows computes rows independently and is the one a
// single row takes (packed int8: any count; packed fp32: kLinearPackedMaxRows; stored layout:
// kLinearGemvMaxRows). A server may put prompt chunks and decode rows in one forward up to this.
int64_t batch_invariant_rows(const TransformerWeights& w);

}  // namespace mf

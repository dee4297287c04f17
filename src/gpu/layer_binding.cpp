#include "gpu/layer_binding.h"

#include "gpu/model_layout.h"
#include "model/tensor_names.h"

namespace mf::gpu {
namespace {

SwigluBinding bind_swiglu(const ParamStore& P, const std::string& gate, const std::string& up,
                          const std::string& down) {
  SwigluBinding s;
  s.gate_up = &P.at(gate);
  fused_gate_up(*s.gate_up, P.at(up));
  s.down = &P.at(down);
  s.inter = s.gate_up->shape[0];
  return s;
}

}  // namespace

GpuLayer bind_layer(const ParamStore& P, const ModelConfig& c, int l) {
  const LayerNames n = layer_names(l);
  GpuLayer L;
  L.attn_norm = &P.at(n.attn_norm());
  L.ffn_norm = &P.at(n.ffn_norm());
  L.q = &P.at(n.attn('q'));
  L.k = &P.at(n.attn('k'));
  L.v = &P.at(n.attn('v'));
  L.o = &P.at(n.attn('o'));
  L.q_bias = P.find(n.attn_bias('q'));
  L.k_bias = P.find(n.attn_bias('k'));
  L.v_bias = P.find(n.attn_bias('v'));
  L.o_bias = P.find(n.attn_bias('o'));
  L.moe = c.layer_is_moe(l);
  if (!L.moe) {
    L.mlp = bind_swiglu(P, n.mlp(kMlpGate), n.mlp(kMlpUp), n.mlp(kMlpDown));
    return L;
  }
  const MoeNames names = moe_names(c, l);
  L.router = &P.at(names.router());
  L.selection_bias = P.find(names.selection_bias());
  if (c.routing.policy == RouterPolicy::NoisyTopK) L.noise = &P.at(names.noise());
  ExpertTable& x = L.experts;
  x.count = c.experts_in_layer(l);
  for (int e = 0; e < x.count; ++e) {
    const SwigluBinding s = bind_swiglu(P, names.expert(e, 0), names.expert(e, 1), names.expert(e, 2));
    x.inter = s.inter;
    x.gate_up_w.push_back(s.gate_up->compute);
    x.down_w.push_back(s.down->compute);
    x.gate_up_g.push_back(s.gate_up->grad);
    x.down_g.push_back(s.down->grad);
  }
  if (c.shared_expert_intermediate_size > 0) {
    L.shared = bind_swiglu(P, names.shared(0), names.shared(1), names.shared(2));
    L.shared_gate = P.find(names.shared_gate());
  }
  return L;
}

}  // namespace mf::gpu

#include "gpu/model_layout.h"

#include "core/error.h"
#include "model/moe_names.h"

namespace mf::gpu {

std::string cuda_unsupported(const ModelConfig& c) {
  if (c.sliding_window > 0) return "sliding-window attention";
  if (c.is_moe()) {
    if (c.routing.policy == RouterPolicy::ExpertChoice) return "expert_choice routing";
    if (c.top_k > cuda::kRouterMaxTopK) return "top_k above 8";
    if (c.num_experts > cuda::kRouterMaxExperts) return "more than 256 experts";
  }
  const int64_t D = c.effective_head_dim();
  if (D != 32 && D != 64 && D != 96 && D != 128) return "head_dim " + std::to_string(D) + " (32, 64, 96, 128 run)";
  return "";
}

std::string layer_prefix(int layer) { return "model.layers." + std::to_string(layer) + "."; }

std::vector<std::string> device_layout_order(const ModelConfig& c) {
  std::vector<std::string> order = {"model.embed_tokens.weight"};
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = layer_prefix(l), a = p + "self_attn.";
    for (const char* n : {"input_layernorm.weight", "post_attention_layernorm.weight"}) order.push_back(p + n);
    for (const char* n : {"q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight"}) order.push_back(a + n);
    if (c.layer_is_moe(l)) {
      const MoeNames names = moe_names(c, l);
      order.push_back(names.router());
      for (int e = 0; e < c.experts_in_layer(l); ++e)
        for (int part : {0, 1, 2}) order.push_back(names.expert(e, part));
      for (int part : {0, 1, 2}) order.push_back(names.shared(part));
      order.push_back(names.shared_gate());
    } else {
      for (const char* n : {"mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"}) order.push_back(p + n);
    }
  }
  order.push_back("model.norm.weight");
  order.push_back("lm_head.weight");
  return order;
}

AttentionTensors bind_attention(const ParamStore& P, int layer) {
  const std::string p = layer_prefix(layer), a = p + "self_attn.";
  AttentionTensors t;
  t.attn_norm = &P.at(p + "input_layernorm.weight");
  t.ffn_norm = &P.at(p + "post_attention_layernorm.weight");
  t.q = &P.at(a + "q_proj.weight");
  t.k = &P.at(a + "k_proj.weight");
  t.v = &P.at(a + "v_proj.weight");
  t.o = &P.at(a + "o_proj.weight");
  return t;
}

const bf16* fused_gate_up(const DeviceTensor& gate, const DeviceTensor& up) {
  MF_CHECK(up.compute == gate.compute + gate.numel && gate.trainable == up.trainable &&
               (!gate.trainable || up.grad == gate.grad + gate.numel),
           "the CUDA path needs '", gate.name, "' and '", up.name,
           "' side by side and both trainable or both frozen (they run as one GEMM)");
  return gate.compute;
}

cuda::RouterKind router_kind(RouterPolicy policy) {
  switch (policy) {
    case RouterPolicy::SoftmaxTopK: return cuda::RouterKind::SoftmaxTopK;
    case RouterPolicy::TopKSoftmax:
    case RouterPolicy::NoisyTopK: return cuda::RouterKind::TopKSoftmax;
    case RouterPolicy::Switch: return cuda::RouterKind::Switch;
    case RouterPolicy::ExpertChoice: break;
  }
  fail("the CUDA path does not route ", router_policy_name(policy));
}

}  // namespace mf::gpu

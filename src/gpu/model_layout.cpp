#include "gpu/model_layout.h"

#include "core/error.h"
#include "model/tensor_names.h"

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

std::vector<std::string> device_layout_order(const ModelConfig& c) {
  std::vector<std::string> order = {kEmbedTokensName};
  for (int l = 0; l < c.num_layers; ++l) {
    const LayerNames ln = layer_names(l);
    order.push_back(ln.attn_norm());
    order.push_back(ln.ffn_norm());
    for (char which : {'q', 'k', 'v', 'o'}) order.push_back(ln.attn(which));
    if (c.layer_is_moe(l)) {
      const MoeNames names = moe_names(c, l);
      order.push_back(names.router());
      for (int e = 0; e < c.experts_in_layer(l); ++e)
        for (int part : {0, 1, 2}) order.push_back(names.expert(e, part));
      for (int part : {0, 1, 2}) order.push_back(names.shared(part));
      order.push_back(names.shared_gate());
    } else {
      for (int part : {kMlpGate, kMlpUp, kMlpDown}) order.push_back(ln.mlp(part));
    }
  }
  order.push_back(kFinalNormName);
  order.push_back(kLmHeadName);
  return order;
}

const bf16* fused_gate_up(const DeviceTensor& gate, const DeviceTensor& up) {
  MF_CHECK(up.compute == gate.compute + gate.numel && gate.trainable == up.trainable &&
               (!gate.trainable || up.grad == gate.grad + gate.numel),
           "the CUDA path needs '", gate.name, "' and '", up.name,
           "' side by side and both trainable or both frozen (they run as one GEMM)");
  return gate.compute;
}

cuda::TopKGating topk_gating(RouterPolicy policy) {
  switch (policy) {
    case RouterPolicy::SoftmaxTopK: return cuda::TopKGating::SoftmaxTopK;
    case RouterPolicy::TopKSoftmax:
    case RouterPolicy::NoisyTopK: return cuda::TopKGating::TopKSoftmax;
    case RouterPolicy::Switch: return cuda::TopKGating::Switch;
    case RouterPolicy::ExpertChoice: break;
  }
  fail("the CUDA path does not route ", router_policy_name(policy));
}

}  // namespace mf::gpu

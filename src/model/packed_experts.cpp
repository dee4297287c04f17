#include "model/packed_experts.h"

#include "core/error.h"
#include "model/tensor_names.h"

namespace mf {

int unpack_packed_experts(ModelWeights& w) {
  const ModelConfig& c = w.config;
  if (!c.is_moe()) return 0;
  const bool mixtral = c.model_type != "qwen2_moe";
  const std::string where = w.source.empty() ? std::string() : w.source + ": ";
  const int64_t E = c.num_experts, H = c.hidden_size, I = c.expert_intermediate_size();
  int unpacked = 0;
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string mlp = layer_prefix(l) + "mlp.";  // transformers-5 packs under mlp. in both layouts
    const auto gate_up_it = w.tensors.find(mlp + "experts.gate_up_proj");
    const auto down_it = w.tensors.find(mlp + "experts.down_proj");
    if (gate_up_it == w.tensors.end() && down_it == w.tensors.end()) continue;
    MF_CHECK(gate_up_it != w.tensors.end() && down_it != w.tensors.end(), where, "layer ", l,
             ": packed experts need both '", mlp, "experts.gate_up_proj' and '", mlp, "experts.down_proj'");
    const Tensor gate_up = gate_up_it->second, down = down_it->second;
    MF_CHECK(gate_up.shape() == Shape({E, 2 * I, H}), where, "tensor '", gate_up_it->first, "' has shape ",
             shape_str(gate_up.shape()), ", expected ", shape_str({E, 2 * I, H}));
    MF_CHECK(down.shape() == Shape({E, H, I}), where, "tensor '", down_it->first, "' has shape ",
             shape_str(down.shape()), ", expected ", shape_str({E, H, I}));
    w.tensors.erase(gate_up_it);
    w.tensors.erase(down_it);

    const MoeNames names = moe_names(c, l);
    const Tensor gate_up_rows = gate_up.reshape({E * 2 * I, H});
    const Tensor down_rows = down.reshape({E * H, I});
    for (int64_t e = 0; e < E; ++e) {
      const std::string gate = names.expert(int(e), kMlpGate);
      MF_CHECK(!w.tensors.count(gate), where, "layer ", l, " has both packed experts and '", gate, "'");
      w.tensors[gate] = gate_up_rows.slice_rows(e * 2 * I, e * 2 * I + I);
      w.tensors[names.expert(int(e), kMlpUp)] = gate_up_rows.slice_rows(e * 2 * I + I, (e + 1) * 2 * I);
      w.tensors[names.expert(int(e), kMlpDown)] = down_rows.slice_rows(e * H, (e + 1) * H);
    }
    if (mixtral) {
      const auto router = w.tensors.find(mlp + "gate.weight");
      if (router != w.tensors.end()) {
        MF_CHECK(!w.tensors.count(names.router()), where, "layer ", l, " has two routers: '", router->first, "' and '",
                 names.router(), "'");
        w.tensors[names.router()] = router->second;
        w.tensors.erase(router);
      }
    }
    ++unpacked;
  }
  return unpacked;
}

}  // namespace mf

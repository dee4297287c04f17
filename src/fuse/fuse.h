// Fusing dense Llama-family models into one Mixtral-layout MoE ("architectural surgery"): the
// skeleton's embeddings, attention, norms and config (or the element-wise mean of all sources),
// expert e = source e's MLP in every layer, and a new router per layer (router_init.h fills it).
// Sparse upcycling is the one-source case: E copies of one MLP.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/weights.h"

namespace mf {

struct ExpertSource {
  std::string name;  // e.g. "Coder"; becomes config.expert_names[e]
  std::string path;  // HF directory or .gguf
  // mergekit-moe's per-expert knobs: Gaussian noise of this absolute std added to every MLP
  // matrix of the expert, and a factor on its down projection (what it writes to the residual
  // stream). Either one makes the expert an fp32 copy instead of a view of its source.
  float noise_scale = 0.0f;
  float residual_scale = 1.0f;
};

struct FuseOptions {
  std::string skeleton;              // model whose shared tensors and config are kept
  std::vector<ExpertSource> experts;
  int top_k = 2;
  bool average_shared = false;       // shared tensors = mean over all sources (fp32) instead
  bool check_tokenizers = true;      // every source must carry the skeleton's vocabulary
  uint64_t noise_seed = 0;           // seeds ExpertSource::noise_scale (expert e draws from seed + e)
};

// Reads the sources one at a time. Expert tensors stay views into their source files (nothing
// is copied unless averaging), so memory holds at most one source's shared tensors beyond the
// skeleton. Routers are zero [E, H] F32 tensors. Throws mf::Error naming the source, the field
// or tensor, and both shapes when a source does not match the skeleton.
ModelWeights fuse_experts(const FuseOptions& opts, const std::function<void(const std::string&)>& log = {});

// One dense model -> E experts, each a copy of its MLP; noise_std > 0 adds seeded Gaussian noise
// (relative to each tensor's RMS) so the copies can diverge when trained. Routers are zero.
ModelWeights upcycle(const ModelWeights& dense, int num_experts, int top_k, float noise_std, uint64_t seed);

}  // namespace mf

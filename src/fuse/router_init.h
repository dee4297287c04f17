// Initial router weights for a fused or upcycled MoE: seeded random, zeros, or derived from
// prompts that describe each expert's domain.
//
// From prompts: the dense skeleton reads each prompt; at every layer the row of expert e is the
// mean hidden state of e's positive prompts minus that of its negative prompts. By default the
// hidden state is taken where the router will read it: the FFN's normed input, averaged over
// the prompt's tokens. Directions are measured from the mean state of all experts' positive
// prompts (every hidden state shares a large common component that says nothing about the
// domain), scaled to unit length, and the layer
// is scaled so the logits of the prompts spread by `temperature` (std across experts) -- so no
// layer starts out saturated or flat. The alternative many merging tools use, the residual
// stream entering the layer at the prompt's last token, is kept for comparison, and so is the
// cheapest one (mergekit-moe's cheap_embed): the prompt's mean token embedding, the same vector
// at every layer, which needs no forward pass.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/transformer.h"
#include "tokenizer/tokenizer.h"

namespace mf {

struct ExpertPrompts {
  std::vector<std::string> positive, negative;
};

enum class PromptHidden {
  ffn_input_mean,    // what the router reads (after attention and the post-attention norm), token mean
  layer_input_last,  // the residual stream entering the layer, last token
  token_embedding_mean,  // the prompt's token embeddings, mean; one vector for every layer
};
PromptHidden prompt_hidden_from_string(const std::string& s);  // "ffn_input" | "layer_input_last" | "embedding"
const char* to_string(PromptHidden h);

// Fills every block_sparse_moe.gate.weight of `moe` with N(0, std^2) (seeded).
void init_routers_random(ModelWeights& moe, uint64_t seed, float std = 0.02f);
// Fills them with U(-bound, bound) (seeded); bound 0 means 1/sqrt(hidden), the default
// initialisation of a torch.nn.Linear layer (mergekit-moe's uniform_random).
void init_routers_uniform(ModelWeights& moe, uint64_t seed, float bound = 0.0f);
void init_routers_zero(ModelWeights& moe);

// `skeleton` is the dense model the prompts run through (same hidden size and layer count as
// `moe`); prompts[e] belongs to expert e. Throws mf::Error if an expert has no positive prompt.
void init_routers_from_prompts(ModelWeights& moe, Transformer& skeleton, const Tokenizer& tok,
                               const std::vector<ExpertPrompts>& prompts, PromptHidden where,
                               float temperature = 1.0f);

}  // namespace mf

// Reading a MoE's mind: which experts its routers choose, for one prompt (per layer and per
// token) or over a labelled dataset (a domain x expert matrix of top-1 routes per layer, and the
// dispatch accuracy: the share of a domain's tokens whose top-1 expert is the expert named
// after that domain). Routes are observed through the forward pass's router logits, which
// never changes the model's output.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "model/transformer.h"

namespace mf {

struct TokenRoute {
  std::vector<int> experts;   // top experts by probability, best first
  std::vector<float> probs;   // their softmax probabilities (over all experts)
};

struct LayerRoutes {
  int layer = 0;
  std::vector<double> share;           // [E]: mean routing probability over the tokens
  std::vector<TokenRoute> tokens;      // [T]
};

struct PromptRoutes {
  std::vector<LayerRoutes> layers;     // MoE layers only, in order
  std::vector<std::string> expert_names;
};

// Runs `ids` through the model (one sequence) and collects every MoE layer's routes; `top`
// experts are kept per token. Throws mf::Error for a dense model.
PromptRoutes route_prompt(Transformer& model, std::span<const int32_t> ids, int top = 2);

struct RoutingMatrix {
  std::vector<std::string> domains, experts;
  std::vector<int> layers;                                  // the MoE layers
  std::vector<std::vector<std::vector<int64_t>>> counts;    // [layer][domain][expert] top-1 tokens
  std::vector<std::vector<int64_t>> overall;                // [domain][expert], summed over layers
  // Share of the domain's routed tokens (all layers) whose top-1 expert carries the domain's
  // name (case-insensitive); -1 when no expert is named after the domain.
  double dispatch_accuracy(size_t domain) const;
};

// One sequence per example; only the positions flagged in `counted` (e.g. answer tokens) are
// tallied. domain[i] indexes `domains`.
struct LabelledSequence {
  std::span<const int32_t> tokens;
  std::span<const uint8_t> counted;
  int domain = 0;
};
RoutingMatrix route_dataset(Transformer& model, const std::vector<LabelledSequence>& data,
                            const std::vector<std::string>& domains,
                            const std::function<void(size_t, size_t)>& progress = {});

// The matrix as text tables (overall, then per layer when `per_layer`), and as one HTML page of
// heatmaps (overall first, then every layer).
std::string routing_matrix_table(const RoutingMatrix& m, bool per_layer);
std::string routing_matrix_html(const RoutingMatrix& m, const std::string& title);

}  // namespace mf

// Router supervision from domain labels (train.router_domain_coef): which expert each domain of
// the instruction data belongs to, read from the model's expert names, and the per-token route
// targets of a batch that model/training.h's StepOptions::route_targets takes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "train/training_data.h"

namespace mf {

// Per domain: the index of the expert of the same name (case-insensitive), or -1 when no expert
// has that name. Throws mf::Error when the model has no MoE layer, no expert names, experts that
// differ in number across layers, or no expert named after any of the domains.
std::vector<int32_t> domain_experts(const std::vector<std::string>& domains, const ModelConfig& config);

// "Actor -> expert 0, Coder -> expert 2, Misc -> none": the mapping as a message line.
std::string describe_domain_experts(const std::vector<std::string>& domains, const std::vector<int32_t>& experts);

// out[rows * cols]: each answer position of a row (a target >= 0) gets its record's expert (-1
// when its domain has none); prompt and padding positions get -1. The loss then pulls the mean
// routing of a record's answer tokens, the ones its loss and `inspect`'s dispatch accuracy count:
// the chat template's opening tokens are the same in every domain and could not be told apart.
// Throws mf::Error when the batch carries no domains.
void batch_route_targets(const Batch& batch, const std::vector<int32_t>& domain_expert, std::vector<int32_t>& out);

}  // namespace mf

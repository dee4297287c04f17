#include "moe/routing_config.h"

#include "core/error.h"

namespace mf {
namespace {

struct PolicyName {
  RouterPolicy policy;
  const char* name;
};
constexpr PolicyName kPolicies[] = {{RouterPolicy::SoftmaxTopK, "softmax_topk"},
                                    {RouterPolicy::TopKSoftmax, "topk_softmax"},
                                    {RouterPolicy::Switch, "switch"},
                                    {RouterPolicy::NoisyTopK, "noisy_topk"},
                                    {RouterPolicy::ExpertChoice, "expert_choice"}};

}  // namespace

const char* router_policy_name(RouterPolicy p) {
  for (const PolicyName& n : kPolicies)
    if (n.policy == p) return n.name;
  return "?";
}

RouterPolicy parse_router_policy(const std::string& name) {
  for (const PolicyName& n : kPolicies)
    if (name == n.name) return n.policy;
  std::string valid;
  for (const PolicyName& n : kPolicies) valid += std::string(valid.empty() ? "" : ", ") + n.name;
  fail("router_policy '", name, "' is not known (", valid, ")");
}

void RoutingConfig::validate(int num_experts, int top_k) const {
  MF_CHECK(policy != RouterPolicy::Switch || top_k == 1, "model config: router_policy switch sends each token to ",
           "one expert; set num_experts_per_tok to 1 (got ", top_k, ")");
  MF_CHECK(capacity_factor >= 0, "model config: capacity_factor must be >= 0 (0: dropless), got ", capacity_factor);
  MF_CHECK(min_capacity >= 0, "model config: min_capacity must be >= 0, got ", min_capacity);
  if (policy == RouterPolicy::ExpertChoice)
    MF_CHECK(capacity_for(true) <= num_experts && capacity_for(false) <= num_experts,
             "model config: expert_choice capacity_factor is the mean number of experts per token and cannot exceed ",
             "the ", num_experts, " experts");
}

}  // namespace mf

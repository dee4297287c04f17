#include "train/domain_routing.h"

#include <algorithm>

#include "core/error.h"
#include "data/sft_record.h"

namespace mf {

std::vector<int32_t> domain_experts(const std::vector<std::string>& domains, const ModelConfig& c) {
  MF_CHECK(c.is_moe(), "train.router_domain_coef: the model has no MoE layer (no router to supervise)");
  MF_CHECK(!c.expert_names.empty(), "train.router_domain_coef: the model's config has no expert_names to match the "
           "data's domains against (moeforge fuse writes them; add \"expert_names\" to config.json)");
  for (int l = 0; l < c.num_layers; ++l)
    MF_CHECK(!c.layer_is_moe(l) || c.experts_in_layer(l) == int(c.expert_names.size()), "train.router_domain_coef: ",
             "layer ", l, " has ", c.experts_in_layer(l), " experts but the config names ", c.expert_names.size());
  std::vector<int32_t> out(domains.size(), -1);
  bool any = false;
  for (size_t d = 0; d < domains.size(); ++d) {
    out[d] = expert_of_domain(domains[d], c.expert_names);
    any = any || out[d] >= 0;
  }
  if (!any) {
    std::string names, experts;
    for (const std::string& d : domains) names += (names.empty() ? "" : ", ") + d;
    for (const std::string& e : c.expert_names) experts += (experts.empty() ? "" : ", ") + e;
    fail("train.router_domain_coef: no expert is named after a domain of the data (domains: ",
         names.empty() ? "none" : names, "; experts: ", experts, ")");
  }
  return out;
}

std::string describe_domain_experts(const std::vector<std::string>& domains, const std::vector<int32_t>& experts) {
  std::string out;
  for (size_t d = 0; d < domains.size(); ++d)
    out += cat(out.empty() ? "" : ", ", domains[d], " -> ",
               experts[d] >= 0 ? cat("expert ", experts[d]) : std::string("none"));
  return out;
}

void batch_route_targets(const Batch& b, const std::vector<int32_t>& domain_expert, std::vector<int32_t>& out) {
  MF_CHECK(b.row_domain.size() == size_t(b.rows),
           "train.router_domain_coef needs instruction data, whose records carry their domain");
  out.assign(size_t(b.rows) * size_t(b.cols), -1);
  for (int r = 0; r < b.rows; ++r) {
    const int32_t d = b.row_domain[size_t(r)];
    MF_CHECK(d >= 0 && size_t(d) < domain_expert.size(), "batch row ", r, ": domain ", d, " of ",
             domain_expert.size());
    const int32_t e = domain_expert[size_t(d)];
    const size_t row = size_t(r) * size_t(b.cols);
    for (size_t t = row; t < row + size_t(b.cols); ++t)
      if (b.targets[t] >= 0) out[t] = e;
  }
}

}  // namespace mf

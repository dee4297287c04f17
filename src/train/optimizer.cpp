#include "train/optimizer.h"

#include <cmath>
#include <set>

#include "core/error.h"

namespace mf {

bool default_no_decay(const std::string& name, const Shape& shape) {
  const bool is_bias = name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
  return shape.size() < 2 || is_bias || name.find("norm") != std::string::npos;
}

double clip_grad_norm(std::span<const std::span<float>> grads, float max_norm) {
  double total = 0;
  for (const std::span<float>& g : grads) total += sum_of_squares(g.data(), int64_t(g.size()));
  const double norm = std::sqrt(total);
  if (max_norm > 0 && std::isfinite(norm)) {
    const double coef = double(max_norm) / (norm + 1e-6);
    if (coef < 1.0)
      for (const std::span<float>& g : grads) scale_inplace(g.data(), int64_t(g.size()), float(coef));
  }
  return norm;
}

AdamW::AdamW(std::vector<ParamGroup> groups, std::vector<TrainableParam> params, Betas betas)
    : groups_(std::move(groups)), params_(std::move(params)), betas_(betas) {
  std::set<std::string> seen;
  for (const TrainableParam& p : params_) {
    MF_CHECK(p.group >= 0 && size_t(p.group) < groups_.size(), "AdamW: parameter '", p.name, "' has group ", p.group,
             " but there are ", groups_.size(), " groups");
    MF_CHECK(p.value.size() == p.grad.size(), "AdamW: parameter '", p.name, "' has ", p.value.size(),
             " values but ", p.grad.size(), " gradients");
    MF_CHECK(seen.insert(p.name).second, "AdamW: parameter '", p.name, "' given twice");
    m_.emplace_back(p.value.size(), 0.0f);
    v_.emplace_back(p.value.size(), 0.0f);
  }
}

AdamWHyper AdamW::hyper(const ParamGroup& group, const Betas& betas, float lr_multiplier, int64_t step) {
  AdamWHyper h;
  h.lr = group.lr * lr_multiplier;
  h.beta1 = betas.beta1;
  h.beta2 = betas.beta2;
  h.eps = betas.eps;
  h.weight_decay = group.weight_decay;
  h.step = step;
  return h;
}

void AdamW::step(float lr_multiplier) {
  ++step_;
  for (size_t i = 0; i < params_.size(); ++i) {
    const TrainableParam& p = params_[i];
    const AdamWHyper h = hyper(groups_[size_t(p.group)], betas_, lr_multiplier, step_);
    adamw_update(p.value.data(), p.grad.data(), m_[i].data(), v_[i].data(), int64_t(p.value.size()), h);
  }
}

}  // namespace mf

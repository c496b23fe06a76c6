#include "estimators/noise.h"

#include <stdexcept>

namespace htga::estimators {

torch::Tensor flatten_all(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> flat;
  flat.reserve(tensors.size());
  for (const auto& t : tensors)
    if (t.defined()) flat.push_back(t.detach().reshape({-1}));
  if (flat.empty()) return {};
  return torch::cat(flat);
}

EmaNoise::EmaNoise(double rho) : rho_(rho) {
  if (!(rho >= 0.0 && rho < 1.0)) throw std::invalid_argument("EmaNoise: rho must be in [0, 1)");
}

torch::Tensor EmaNoise::observe(const std::vector<torch::Tensor>& grads) {
  torch::Tensor g = flatten_all(grads);
  if (!g.defined()) return {};
  if (!mean_.defined() || mean_.numel() != g.numel()) {
    mean_ = g;
    return {};
  }
  torch::Tensor noise = g - mean_;
  mean_.mul_(rho_).add_(g, 1.0 - rho_);
  return noise;
}

}  // namespace htga::estimators

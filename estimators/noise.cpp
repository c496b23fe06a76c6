#include "estimators/noise.h"

#include <ATen/CPUGeneratorImpl.h>

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
  return observe_flat(g);
}

torch::Tensor EmaNoise::observe_flat(const torch::Tensor& g) {
  if (!mean_.defined() || mean_.numel() != g.numel()) {
    mean_ = g.detach().clone();
    return {};
  }
  torch::Tensor noise = g - mean_;
  mean_.lerp_(g, 1.0 - rho_);
  return noise;
}

bool EmaNoise::update(const torch::Tensor& g) {
  if (!mean_.defined() || mean_.numel() != g.numel()) {
    mean_ = g.detach().clone();
    return false;
  }
  mean_.lerp_(g, 1.0 - rho_);
  return true;
}

}  // namespace htga::estimators

namespace htga::estimators {

torch::Tensor bind_flat_gradients(const std::vector<torch::Tensor>& params) {
  int64_t total = 0;
  for (const auto& p : params) total += p.numel();
  if (params.empty()) return {};
  auto flat = torch::zeros({total}, params.front().options().requires_grad(false));
  int64_t offset = 0;
  for (auto p : params) {
    p.mutable_grad() = flat.narrow(0, offset, p.numel()).view(p.sizes());
    offset += p.numel();
  }
  return flat;
}

torch::Tensor bind_flat_parameters(const std::vector<torch::Tensor>& params) {
  if (params.empty()) return {};
  int64_t total = 0;
  for (const auto& p : params) total += p.numel();
  auto flat = torch::empty({total}, params.front().options().requires_grad(false));
  torch::NoGradGuard no_grad;
  int64_t offset = 0;
  for (auto p : params) {
    auto view = flat.narrow(0, offset, p.numel()).view(p.sizes());
    view.copy_(p.detach());
    p.set_data(view);
    offset += p.numel();
  }
  return flat;
}

Subsample::Subsample(int64_t n, int64_t m, uint64_t seed, const torch::Device& device) : n_(n), all_(m <= 0 || m >= n) {
  if (all_) return;
  auto gen = at::detail::createCPUGenerator(seed);
  index_ = std::get<0>(torch::randperm(n, gen, torch::kInt64).narrow(0, 0, m).sort()).to(device);
}

torch::Tensor Subsample::apply(const torch::Tensor& flat) const { return all_ ? flat : flat.index_select(0, index_); }

}  // namespace htga::estimators

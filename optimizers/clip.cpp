#include "optimizers/clip.h"

#include <cmath>

namespace htga::optimizers {

ClipResult clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  std::vector<torch::Tensor> norms;
  torch::TensorOptions opts;
  for (const auto& p : params) {
    const auto& g = p.grad();
    if (!g.defined()) continue;
    norms.push_back(g.detach().norm(2));
    opts = g.options();
  }
  if (norms.empty()) return {torch::zeros({}), torch::ones({})};
  auto total = torch::stack(norms).norm(2);
  if (max_norm <= 0) return {total, torch::ones({}, opts)};
  auto coef = (max_norm / (total + 1e-6)).clamp_max(1.0);
  for (const auto& p : params) {
    auto g = p.grad();
    if (g.defined()) g.detach().mul_(coef);
  }
  return {total, coef};
}

ClipResult clip_flat_grad_norm(const torch::Tensor& flat_grad, double max_norm, std::optional<double> sumsq) {
  torch::NoGradGuard no_grad;
  const auto opts = flat_grad.options().dtype(torch::kFloat32);
  if (!flat_grad.defined() || flat_grad.numel() == 0) return {torch::zeros({}, opts), torch::ones({}, opts)};
  // A float32 norm, as clip_grad_norm's: the host sum is rounded to float before the root.
  auto total =
      sumsq ? torch::full({}, static_cast<float>(std::sqrt(*sumsq)), opts) : flat_grad.norm(2).to(torch::kFloat32);
  if (max_norm <= 0) return {total, torch::ones({}, opts)};
  auto coef = (max_norm / (total + 1e-6)).clamp_max(1.0);
  // On the CPU the coefficient is at hand without a device round trip: a gradient within the
  // bound is left as it is (x * 1 is x, NaN included), which spares a pass over it.
  if (!(coef.device().is_cpu() && *coef.data_ptr<float>() == 1.0f)) flat_grad.mul_(coef);
  return {total, coef};
}

void clip_grad_value(const std::vector<torch::Tensor>& params, double clip_value) {
  for (const auto& p : params) {
    auto g = p.grad();
    if (g.defined()) g.detach().clamp_(-clip_value, clip_value);
  }
}

}  // namespace htga::optimizers

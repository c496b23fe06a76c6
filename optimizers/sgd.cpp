#include "optimizers/sgd.h"

#include <stdexcept>

namespace htga::optimizers {

Sgd::Sgd(std::vector<torch::Tensor> params, SgdOptions options) : params_(std::move(params)), options_(options) {
  if (options_.weight_decay < 0) throw std::invalid_argument("Invalid weight_decay: must be >= 0");
}

void Sgd::step(const torch::Tensor& lr) {
  torch::NoGradGuard no_grad;
  for (auto& p : params_) {
    const auto& g = p.grad();
    if (!g.defined()) continue;
    if (options_.weight_decay != 0) {
      p.addcmul_(g.add(p, options_.weight_decay), lr, /*value=*/-1);
    } else {
      p.addcmul_(g, lr, /*value=*/-1);
    }
  }
}

void Sgd::zero_grad() {
  for (auto& p : params_) {
    auto& g = p.mutable_grad();
    if (g.defined()) g.zero_();
  }
}

}  // namespace htga::optimizers

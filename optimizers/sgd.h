#pragma once
// SGD whose learning rate is a 0-dim tensor on the parameters' device:
//   d_t = g_t + weight_decay * w_t
//   w_{t+1} = w_t - lr_t * d_t
// torch::optim::SGD takes its rate as a host double; HTGA computes the rate on the device
// from alpha_hat, and reading it back each step would synchronise a GPU every step.

#include <torch/torch.h>

#include <vector>

namespace htga::optimizers {

struct SgdOptions {
  double weight_decay = 0.0;  // L2 penalty added to the gradient
};

class Sgd {
 public:
  Sgd(std::vector<torch::Tensor> params, SgdOptions options = {});
  /// One update with rate `lr` (0-dim tensor, same device as the parameters).
  void step(const torch::Tensor& lr);
  /// Resets gradients to zero (kept allocated, as LibTorch 1.13 does; 2.x would free them).
  void zero_grad();
  const std::vector<torch::Tensor>& params() const { return params_; }

 private:
  std::vector<torch::Tensor> params_;
  SgdOptions options_;
};

}  // namespace htga::optimizers

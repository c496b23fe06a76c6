#pragma once
// Gradient-noise sources. The online source estimates the full gradient by an exponential
// moving average of minibatch gradients, m_t = rho * m_{t-1} + (1 - rho) * g_t, and takes
// the noise as g_t - m_{t-1}.

#include <torch/torch.h>

#include <vector>

namespace htga::estimators {

class EmaNoise {
 public:
  /// `rho` in [0, 1): the EMA factor.
  explicit EmaNoise(double rho);

  /// Observes this step's gradients (the parameter tensors' .grad, undefined ones skipped).
  /// Returns the flattened noise g_t - m_{t-1}, or an undefined tensor on the first call
  /// (no estimate of the mean yet). Keeps one gradient-sized buffer; never changes `grads`.
  torch::Tensor observe(const std::vector<torch::Tensor>& grads);

 private:
  double rho_;
  torch::Tensor mean_;  // m_{t-1}, flat
};

/// All defined tensors flattened into one vector (a copy).
torch::Tensor flatten_all(const std::vector<torch::Tensor>& tensors);

}  // namespace htga::estimators

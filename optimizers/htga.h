#pragma once
// HTGA, Heavy-Tail Gradient Amplification: a learning-rate rule driven by the tail index of
// the gradient noise.
//
//   a_t   = alpha_ema * a_{t-1} + (1 - alpha_ema) * alpha_hat_t   (smoothed; a_t = alpha_hat_t
//           at the first estimate; steps without a finite estimate keep a_{t-1})
//   eta_t = clamp(eta0 * (a_t / alpha0)^beta, lr_min, lr_max)
//   eta_t = eta0 while t < warmup_steps or before the first finite estimate.
// With beta > 0 the rule pulls alpha_hat toward alpha0: heavier tails than the target lower
// the rate, lighter tails raise it.

#include <torch/torch.h>

#include <cstdint>

namespace htga::optimizers {

struct HtgaOptions {
  HtgaOptions(double lr) : lr(lr) {}
  double lr;                  // eta0
  double alpha0 = 1.5;        // target tail index
  double beta = 1.0;          // exponent (0 = constant rate eta0)
  double lr_min = 0;          // smallest rate (0 = lr / 10)
  double lr_max = 0;          // largest rate (0 = 10 * lr)
  double alpha_ema = 0.9;     // smoothing of alpha_hat, in [0, 1)
  int64_t warmup_steps = 10;  // steps at eta0 before the rule applies
};

class HtgaController {
 public:
  HtgaController(HtgaOptions options, torch::Device device);

  /// Given this step's raw estimate (0-dim tensor; NaN when there is none) and the step
  /// number, updates the smoothed alpha and returns the step's rate as a 0-dim float32
  /// tensor on the device. No host synchronisation.
  torch::Tensor update(const torch::Tensor& alpha_hat, int64_t step);

  /// The smoothed tail index a_t (NaN before the first finite estimate).
  const torch::Tensor& smoothed_alpha() const { return smoothed_; }
  const HtgaOptions& options() const { return options_; }

 private:
  HtgaOptions options_;
  torch::Tensor smoothed_;
  torch::Tensor eta0_;
};

}  // namespace htga::optimizers

#pragma once
// HTGA, Heavy-Tail Gradient Amplification: a learning-rate rule driven by the tail index of
// the gradient noise.
//
//   a_t   = alpha_ema * a_{t-1} + (1 - alpha_ema) * alpha_hat_t   (smoothed; a_t = alpha_hat_t
//           at the first estimate; steps without a finite estimate keep a_{t-1})
//   eta_t = clamp(eta0 * (a_t / alpha0)^beta, lr_min, lr_max)
//   eta_t = eta0 while t < warmup_steps or before the first finite estimate;
//   eta_t limited to [eta_{t-1} / max_lr_change, eta_{t-1} * max_lr_change].
// The target alpha0 becomes alpha0_explore while the smoothed loss sits on a plateau (a heavier
// tailed target: the rule raises the rate), and moves to alpha0_final over the last part of
// training; the phase is logged.
// With beta > 0 the rule pulls alpha_hat toward alpha0: heavier tails than the target lower
// the rate, lighter tails raise it.

#include <torch/torch.h>

#include <cstdint>
#include <vector>

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
  double max_lr_change = 0;   // largest factor between consecutive rates (0 = no limit)
  // Exploration: while the smoothed loss has not improved by a relative plateau_tol within
  // plateau_patience steps, the target is alpha0_explore (0 = never explore).
  double alpha0_explore = 0;
  double plateau_tol = 0.01;
  int64_t plateau_patience = 100;
  double loss_ema = 0.9;  // smoothing of the loss for the plateau detector
  // Annealing: over the last final_fraction of total_steps the target moves linearly from
  // alpha0 to alpha0_final (0 = no annealing).
  double alpha0_final = 0;
  double final_fraction = 0.2;
  int64_t total_steps = 0;  // steps of the whole run (for annealing)
};

/// Throws std::invalid_argument (the option named) when `options` cannot make a controller: a
/// rate that is not positive or overflows float32, lr_min above lr_max, max_lr_change in (0, 1),
/// alpha_ema outside [0, 1), a negative target, final_fraction outside [0, 1].
void check_options(const HtgaOptions& options);

/// The controller's phase, as logged per step.
enum class Phase : int { kNormal = 0, kExplore = 1, kFinal = 2 };

class HtgaController {
 public:
  /// `groups` > 1: one alpha and one rate per parameter group (layer scope); update() then
  /// takes and returns tensors of shape [groups].
  HtgaController(HtgaOptions options, torch::Device device, int64_t groups = 1);

  /// Given this step's raw estimate (0-dim tensor; NaN when there is none), the step's loss
  /// (undefined: no plateau detection) and the step number, updates the smoothed alpha and
  /// returns the step's rate as a 0-dim float32 tensor on the device. No host synchronisation.
  torch::Tensor update(const torch::Tensor& alpha_hat, int64_t step, const torch::Tensor& loss = {});

  /// The phase of the last update (0-dim float32: 0 normal, 1 explore, 2 final).
  const torch::Tensor& phase() const { return phase_; }

  /// Controller state for checkpoints (smoothed alpha, last rate, plateau detector, phase).
  std::vector<torch::Tensor> state() const;
  void load_state(const std::vector<torch::Tensor>& state);

  /// The smoothed tail index a_t (NaN before the first finite estimate).
  const torch::Tensor& smoothed_alpha() const { return smoothed_; }
  const HtgaOptions& options() const { return options_; }

 private:
  HtgaOptions options_;
  torch::Tensor smoothed_;
  torch::Tensor eta0_;
  torch::Tensor last_rate_;    // for max_lr_change
  torch::Tensor loss_smooth_;  // plateau detector state: smoothed loss,
  torch::Tensor loss_best_;    // the best smoothed loss of the current window,
  torch::Tensor since_best_;   // steps since it improved by plateau_tol
  torch::Tensor phase_;
  // Constants of the usual step (no plateau detection, not annealing): the target alpha0 and
  // the normal phase, made once instead of by three tensor operations a step.
  torch::Tensor alpha0_t_, normal_phase_;
};

}  // namespace htga::optimizers

#pragma once
// Gradient-noise sources. The online source estimates the full gradient by an exponential
// moving average of minibatch gradients, m_t = rho * m_{t-1} + (1 - rho) * g_t, and takes
// the noise as g_t - m_{t-1}.

#include <torch/torch.h>

#include <cstdint>
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
  /// The same for a gradient that is already one flat vector (see bind_flat_gradients).
  torch::Tensor observe_flat(const torch::Tensor& flat_grad);

  /// The cheap form for scale-invariant estimators (all of ours): updates the mean in place and
  /// returns false on the first call. Afterwards g_t - m_t = rho (g_t - m_{t-1}), so the noise
  /// is g_t - mean() up to the factor rho, and nothing gradient-sized is allocated
  /// (see hill_of_difference). Needs rho > 0.
  bool update(const torch::Tensor& flat_grad);
  const torch::Tensor& mean() const { return mean_; }
  /// For hill_ema_noise, which updates the mean itself; started() once a gradient was seen.
  torch::Tensor& mutable_mean() { return mean_; }
  /// For checkpoints: the mean (undefined before the first gradient).
  void set_mean(const torch::Tensor& mean) { mean_ = mean.defined() ? mean.clone() : torch::Tensor(); }
  bool started() const { return mean_.defined(); }
  double rho() const { return rho_; }

 private:
  double rho_;
  torch::Tensor mean_;  // m_{t-1}, flat
};

/// All defined tensors flattened into one vector (a copy).
torch::Tensor flatten_all(const std::vector<torch::Tensor>& tensors);

/// Gives every parameter a zeroed gradient that is a view into one flat buffer, and returns
/// the buffer. Backward accumulates into existing gradients in place, so after each step the
/// buffer is the whole gradient with no copy; gradients must then be zeroed in place (never
/// reset to undefined) for the views to stay bound.
torch::Tensor bind_flat_gradients(const std::vector<torch::Tensor>& params);

/// Moves the parameters' values into one flat buffer and makes each parameter a view of it
/// (its data, not its identity: modules and autograd see the same parameters). Optimizers can
/// then update every parameter with a few kernels over the buffer (Optimizer::use_flat).
/// Copies into a parameter (checkpoints) keep the view; replacing its data would not.
torch::Tensor bind_flat_parameters(const std::vector<torch::Tensor>& params);

/// A fixed random subset of m of n coordinates (reproducible by seed), to bound the cost of
/// estimating on large models.
class Subsample {
 public:
  /// m >= n keeps every coordinate.
  Subsample(int64_t n, int64_t m, uint64_t seed, const torch::Device& device);
  torch::Tensor apply(const torch::Tensor& flat) const;
  int64_t size() const { return all_ ? n_ : index_.numel(); }

 private:
  int64_t n_;
  bool all_;
  torch::Tensor index_;
};

}  // namespace htga::estimators

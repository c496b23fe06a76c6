#pragma once
// Base optimizers whose learning rate is a 0-dim tensor on the parameters' device.
// torch::optim takes its rate as a host double; HTGA computes the rate on the device from
// alpha_hat, and reading it back each step would synchronise a GPU every step. The updates
// follow torch.optim.SGD and torch.optim.Adam/AdamW exactly (tests compare them step by step).

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace htga::optimizers {

/// What every base optimizer offers the training loop.
class Optimizer {
 public:
  explicit Optimizer(std::vector<torch::Tensor> params) : params_(std::move(params)) {}
  virtual ~Optimizer() = default;
  /// One update with rate `lr`, on the parameters' device: a 0-dim tensor, or one rate per
  /// parameter tensor (shape [params().size()], HTGA's layer scope).
  virtual void step(const torch::Tensor& lr) = 0;
  /// Zeroes gradients in place (never resets them to undefined: gradients may be views of one
  /// flat buffer, see estimators::bind_flat_gradients).
  void zero_grad();
  const std::vector<torch::Tensor>& params() const { return params_; }

  /// Declares that the parameters are, in order, views of `flat_params` and their gradients
  /// views of `flat_grads` (estimators::bind_flat_parameters and bind_flat_gradients). A step
  /// with one rate (a 0-dim lr) then runs as a few kernels over the whole buffer instead of a
  /// few per tensor, with the same values element by element; the optimizer's state lives in
  /// flat buffers too. Call before the first step.
  void use_flat(torch::Tensor flat_params, torch::Tensor flat_grads);

  /// The optimizer's state as tensors (for checkpoints; torch::save can write the vector), and
  /// its restoration: a restored optimizer continues bit for bit like the one saved.
  virtual std::vector<torch::Tensor> state() const = 0;
  virtual void load_state(const std::vector<torch::Tensor>& state) = 0;

 protected:
  /// The rate of parameter i.
  static torch::Tensor rate_of(const torch::Tensor& lr, size_t i) { return lr.dim() == 0 ? lr : lr[i]; }
  /// Whether this step runs over the flat buffers.
  bool flat_step(const torch::Tensor& lr) const { return flat_p_.defined() && lr.dim() == 0; }
  /// Views of `flat` shaped as each parameter.
  std::vector<torch::Tensor> views_of(const torch::Tensor& flat) const;
  /// A state buffer as flat as the parameters, its per-parameter views in `views`, loaded from
  /// `state` (per parameter; empty tensors: not created yet, then neither is the buffer).
  torch::Tensor load_flat(const std::vector<torch::Tensor>& state, size_t first, size_t stride,
                          std::vector<torch::Tensor>& views) const;

  std::vector<torch::Tensor> params_;
  torch::Tensor flat_p_, flat_g_;  // use_flat's buffers (undefined: per tensor)
};

struct SgdOptions {
  double weight_decay = 0.0;  // L2 penalty added to the gradient
  double momentum = 0.0;      // 0 = plain SGD
  bool nesterov = false;      // Nesterov momentum (needs momentum > 0)
};

/// SGD (torch.optim.SGD, dampening 0):
///   d_t = g_t + weight_decay * w_t
///   b_t = momentum * b_{t-1} + d_t   (b_1 = d_1)
///   d_t = nesterov ? d_t + momentum * b_t : b_t      (when momentum > 0)
///   w_{t+1} = w_t - lr_t * d_t
class Sgd : public Optimizer {
 public:
  Sgd(std::vector<torch::Tensor> params, SgdOptions options = {});
  void step(const torch::Tensor& lr) override;
  std::vector<torch::Tensor> state() const override;
  void load_state(const std::vector<torch::Tensor>& state) override;

 private:
  void flat_update(const torch::Tensor& lr);

  SgdOptions options_;
  std::vector<torch::Tensor> buffers_;  // momentum buffers (undefined until the first step)
  torch::Tensor flat_buffer_;           // flat mode: the momentum buffers' storage
};

struct AdamOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // Adam: L2 added to the gradient; AdamW: decoupled decay
  bool decoupled = false;     // AdamW
};

/// Adam (Kingma and Ba 2015) and AdamW (Loshchilov and Hutter 2019), torch.optim semantics:
///   AdamW: w_t = w_{t-1} (1 - lr_t weight_decay);  Adam: g_t = g_t + weight_decay w_{t-1}
///   m_t = beta1 m_{t-1} + (1 - beta1) g_t,  v_t = beta2 v_{t-1} + (1 - beta2) g_t^2
///   w_t = w_t - lr_t (m_t / (1 - beta1^t)) / (sqrt(v_t / (1 - beta2^t)) + eps)
class Adam : public Optimizer {
 public:
  Adam(std::vector<torch::Tensor> params, AdamOptions options = {});
  void step(const torch::Tensor& lr) override;
  std::vector<torch::Tensor> state() const override;
  void load_state(const std::vector<torch::Tensor>& state) override;

 private:
  void flat_update(const torch::Tensor& lr, double bc1, double bc2);

  AdamOptions options_;
  int64_t t_ = 0;
  std::vector<torch::Tensor> m_, v_;
  torch::Tensor flat_m_, flat_v_;  // flat mode: the moments' storage
};

}  // namespace htga::optimizers

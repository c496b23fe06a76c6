#pragma once
// Global-norm gradient clipping with the semantics of torch.nn.utils.clip_grad_norm_:
//   total = || (||g_1||_2, ..., ||g_n||_2) ||_2
//   coef  = min(1, max_norm / (total + 1e-6))
//   g_i  *= coef

#include <torch/torch.h>

#include <optional>
#include <vector>

namespace htga::optimizers {

struct ClipResult {
  torch::Tensor total_norm;  // 0-dim, the norm before clipping
  torch::Tensor coef;        // 0-dim, the factor applied (1 when not clipped)
};

/// Clips the gradients of `params` in place (max_norm <= 0: measure only). Never synchronises
/// with the host: the factor is applied as a tensor, as torch 1.13's clip_grad_norm_ does.
ClipResult clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm);

/// The same for gradients that are views of one flat buffer (estimators::bind_flat_gradients):
/// one reduction and one scaling over the buffer instead of two kernels per tensor. `sumsq`,
/// when given, is the sum of the squared gradient already computed on the way (the alpha_hat
/// pass reads the gradient too), and the gradient is only scaled. The norm is the same as
/// clip_grad_norm's up to rounding (one sum instead of a norm of norms).
ClipResult clip_flat_grad_norm(const torch::Tensor& flat_grad, double max_norm, std::optional<double> sumsq = {});

/// Element-wise clipping to [-clip_value, clip_value] (torch.nn.utils.clip_grad_value_), in place.
void clip_grad_value(const std::vector<torch::Tensor>& params, double clip_value);

}  // namespace htga::optimizers

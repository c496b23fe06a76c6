#pragma once
// Global-norm gradient clipping with the semantics of torch.nn.utils.clip_grad_norm_:
//   total = || (||g_1||_2, ..., ||g_n||_2) ||_2
//   coef  = min(1, max_norm / (total + 1e-6))
//   g_i  *= coef

#include <torch/torch.h>

#include <vector>

namespace htga::optimizers {

struct ClipResult {
  torch::Tensor total_norm;  // 0-dim, the norm before clipping
  torch::Tensor coef;        // 0-dim, the factor applied (1 when not clipped)
};

/// Clips the gradients of `params` in place (max_norm <= 0: measure only). Never synchronises
/// with the host: the factor is applied as a tensor, as torch 1.13's clip_grad_norm_ does.
ClipResult clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm);

/// Element-wise clipping to [-clip_value, clip_value] (torch.nn.utils.clip_grad_value_), in place.
void clip_grad_value(const std::vector<torch::Tensor>& params, double clip_value);

}  // namespace htga::optimizers

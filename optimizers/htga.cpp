#include "optimizers/htga.h"

#include <limits>
#include <stdexcept>
#include <string>

namespace htga::optimizers {

HtgaController::HtgaController(HtgaOptions options, torch::Device device) : options_(options) {
  auto& o = options_;
  if (!(o.lr > 0)) throw std::invalid_argument("Invalid learning rate: " + std::to_string(o.lr));
  if (!(o.alpha0 > 0)) throw std::invalid_argument("Invalid alpha0: " + std::to_string(o.alpha0));
  if (!(o.alpha_ema >= 0 && o.alpha_ema < 1)) throw std::invalid_argument("Invalid alpha_ema: must be in [0, 1)");
  if (o.lr_min <= 0) o.lr_min = o.lr / 10;
  if (o.lr_max <= 0) o.lr_max = o.lr * 10;
  if (o.lr_min > o.lr_max)
    throw std::invalid_argument("Invalid rate range: lr_min " + std::to_string(o.lr_min) + " > lr_max " +
                                std::to_string(o.lr_max));
  auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  smoothed_ = torch::full({}, std::numeric_limits<float>::quiet_NaN(), opts);
  eta0_ = torch::full({}, o.lr, opts);
}

torch::Tensor HtgaController::update(const torch::Tensor& alpha_hat, int64_t step) {
  const auto& o = options_;
  auto raw = alpha_hat.to(smoothed_.options());
  auto blended = torch::where(torch::isnan(smoothed_), raw, smoothed_ * o.alpha_ema + raw * (1 - o.alpha_ema));
  smoothed_ = torch::where(torch::isfinite(raw), blended, smoothed_);
  if (step < o.warmup_steps) return eta0_;
  auto rate = (eta0_ * (smoothed_ / o.alpha0).pow(o.beta)).clamp(o.lr_min, o.lr_max);
  return torch::where(torch::isfinite(smoothed_), rate, eta0_);
}

}  // namespace htga::optimizers

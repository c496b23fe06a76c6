#include "optimizers/htga.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>

namespace htga::optimizers {

namespace {
/// A number for a message: short, whatever its size ("1e+300", not 301 digits).
std::string num(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}
}  // namespace

void check_options(const HtgaOptions& o) {
  constexpr double kFloatMax = std::numeric_limits<float>::max();
  if (!(o.lr > 0 && o.lr <= kFloatMax)) throw std::invalid_argument("Invalid learning rate: " + num(o.lr));
  if (!(o.alpha0 > 0)) throw std::invalid_argument("Invalid alpha0: " + num(o.alpha0));
  if (!(o.alpha_ema >= 0 && o.alpha_ema < 1)) throw std::invalid_argument("Invalid alpha_ema: must be in [0, 1)");
  const double lr_min = o.lr_min > 0 ? o.lr_min : o.lr / 10, lr_max = o.lr_max > 0 ? o.lr_max : o.lr * 10;
  if (lr_min > lr_max)
    throw std::invalid_argument("Invalid rate range: lr_min " + num(lr_min) + " > lr_max " + num(lr_max));
  if (!(lr_max <= kFloatMax)) throw std::invalid_argument("Invalid rate range: lr_max overflows float32");
  if (o.max_lr_change != 0 && !(o.max_lr_change >= 1))
    throw std::invalid_argument("Invalid max_lr_change: must be >= 1 (or 0 for no limit)");
  if (o.alpha0_explore < 0 || o.alpha0_final < 0) throw std::invalid_argument("Invalid target: must be > 0");
  if (!(o.final_fraction >= 0 && o.final_fraction <= 1))
    throw std::invalid_argument("Invalid final_fraction: must be in [0, 1]");
}

HtgaController::HtgaController(HtgaOptions options, torch::Device device, int64_t groups) : options_(options) {
  auto& o = options_;
  check_options(o);
  if (o.lr_min <= 0) o.lr_min = o.lr / 10;
  if (o.lr_max <= 0) o.lr_max = o.lr * 10;
  auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<int64_t> shape = groups > 1 ? std::vector<int64_t>{groups} : std::vector<int64_t>{};
  smoothed_ = torch::full(shape, nan, opts);
  eta0_ = torch::full(shape, o.lr, opts);
  last_rate_ = eta0_.clone();
  loss_smooth_ = torch::full({}, nan, opts);
  loss_best_ = torch::full({}, nan, opts);
  since_best_ = torch::zeros({}, opts);
  phase_ = torch::zeros({}, opts);
  alpha0_t_ = torch::full({}, o.alpha0, opts);
  normal_phase_ = torch::zeros({}, opts);
}

torch::Tensor HtgaController::update(const torch::Tensor& alpha_hat, int64_t step, const torch::Tensor& loss) {
  const auto& o = options_;
  auto raw = alpha_hat.to(smoothed_.options());
  auto blended = torch::where(torch::isnan(smoothed_), raw, smoothed_ * o.alpha_ema + raw * (1 - o.alpha_ema));
  smoothed_ = torch::where(torch::isfinite(raw), blended, smoothed_);

  // Plateau detector, on the device: the window restarts whenever the smoothed loss beats the
  // window's best by the relative tolerance.
  const bool plateau = o.alpha0_explore > 0 && loss.defined();
  torch::Tensor explore;
  if (plateau) {
    auto l = loss.detach().to(smoothed_.options());
    loss_smooth_ = torch::where(torch::isnan(loss_smooth_), l, loss_smooth_ * o.loss_ema + l * (1 - o.loss_ema));
    auto improved = torch::isnan(loss_best_) | (loss_smooth_ < loss_best_ * (1 - o.plateau_tol));
    loss_best_ = torch::where(improved, loss_smooth_, loss_best_);
    since_best_ = torch::where(improved, torch::zeros_like(since_best_), since_best_ + 1);
    explore = since_best_ >= static_cast<double>(o.plateau_patience);
  }
  // Target: alpha0, alpha0_explore on a plateau, annealed toward alpha0_final at the end.
  double target = o.alpha0;
  bool final = false;
  if (o.alpha0_final > 0 && o.total_steps > 0) {
    const double start = (1 - o.final_fraction) * static_cast<double>(o.total_steps);
    if (static_cast<double>(step) >= start) {
      const double f = o.final_fraction > 0 ? (step - start) / (o.final_fraction * o.total_steps) : 1.0;
      target = o.alpha0 + std::min(1.0, f) * (o.alpha0_final - o.alpha0);
      final = true;
    }
  }
  torch::Tensor target_t;
  if (final) {
    target_t = torch::full({}, target, smoothed_.options());
    phase_ = torch::full({}, static_cast<float>(Phase::kFinal), smoothed_.options());
  } else if (plateau) {
    target_t = torch::where(explore, torch::full({}, o.alpha0_explore, smoothed_.options()),
                            torch::full({}, target, smoothed_.options()));
    phase_ = explore.to(torch::kFloat32) * static_cast<float>(Phase::kExplore);
  } else {
    target_t = alpha0_t_;  // target is alpha0 here
    phase_ = normal_phase_;
  }

  torch::Tensor rate = eta0_;
  if (step >= o.warmup_steps) {
    auto ruled = (eta0_ * (smoothed_ / target_t).pow(o.beta)).clamp(o.lr_min, o.lr_max);
    rate = torch::where(torch::isfinite(smoothed_), ruled, eta0_);
    if (o.max_lr_change > 0)
      rate = torch::min(torch::max(rate, last_rate_ / o.max_lr_change), last_rate_ * o.max_lr_change);
  }
  last_rate_ = rate;
  return rate;
}

std::vector<torch::Tensor> HtgaController::state() const {
  return {smoothed_.clone(),  last_rate_.clone(),  loss_smooth_.clone(),
          loss_best_.clone(), since_best_.clone(), phase_.clone()};
}

void HtgaController::load_state(const std::vector<torch::Tensor>& s) {
  if (s.size() != 6 || !s[0].sizes().equals(smoothed_.sizes()))
    throw std::invalid_argument("HTGA controller state does not match this controller");
  const auto dev = smoothed_.device();
  smoothed_ = s[0].to(dev).clone();
  last_rate_ = s[1].to(dev).clone();
  loss_smooth_ = s[2].to(dev).clone();
  loss_best_ = s[3].to(dev).clone();
  since_best_ = s[4].to(dev).clone();
  phase_ = s[5].to(dev).clone();
}

}  // namespace htga::optimizers

#include "estimators/hill.h"

#include <cmath>
#include <limits>

namespace htga::estimators {

int64_t hill_default_k(int64_t n) {
  auto k = static_cast<int64_t>(std::floor(std::sqrt(static_cast<double>(n))));
  // sqrt in floating point can land just below an exact square.
  while ((k + 1) * (k + 1) <= n) ++k;
  return k;
}

torch::Tensor hill(const torch::Tensor& x, int64_t k) {
  const int64_t n = x.numel();
  if (k <= 0) k = hill_default_k(n);
  auto opts = x.options().dtype(torch::kFloat32);
  if (k < 1 || k + 1 > n) return torch::full({}, std::numeric_limits<float>::quiet_NaN(), opts);
  auto mags = x.detach().reshape({-1}).abs();
  if (mags.scalar_type() != torch::kFloat64) mags = mags.to(torch::kFloat32);
  // topk is O(n) and avoids sorting the whole vector; NaN counts as largest, so NaN input
  // poisons the sum and yields NaN.
  auto top = std::get<0>(mags.topk(k + 1, /*dim=*/0, /*largest=*/true, /*sorted=*/true));
  auto threshold = top.narrow(0, k, 1);
  auto sum_log = (top.narrow(0, 0, k) / threshold).log().sum();
  auto alpha = (static_cast<double>(k) / sum_log).to(torch::kFloat32);
  // Undefined cases come out as inf (all equal), 0 (an infinite value or X(k+1) = 0) or NaN.
  auto defined = torch::isfinite(alpha) & (alpha > 0);
  return torch::where(defined, alpha, torch::full({}, std::numeric_limits<float>::quiet_NaN(), opts));
}

}  // namespace htga::estimators

#pragma once
// Samplers with known tail indices, for estimator tests. Each draws from its own generator.

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>

namespace htga::test {

/// Symmetric Pareto: |X| = U^(-1/alpha) >= 1, so P(|X| > x) = x^-alpha exactly; random sign.
inline torch::Tensor pareto(double alpha, int64_t n, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto u = 1.0 - torch::rand({n}, gen, torch::kFloat64);  // (0, 1]
  auto sign = torch::randint(0, 2, {n}, gen, torch::kFloat64).mul(2).sub(1);
  return u.pow(-1.0 / alpha).mul(sign);
}

/// Symmetric alpha-stable (beta = 0, scale 1) by Chambers, Mallows and Stuck (1976):
/// V ~ U(-pi/2, pi/2), W ~ Exp(1),
/// X = sin(alpha V) / cos(V)^(1/alpha) * (cos((1 - alpha) V) / W)^((1 - alpha) / alpha).
inline torch::Tensor symmetric_stable(double alpha, int64_t n, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto v = (torch::rand({n}, gen, torch::kFloat64) - 0.5) * M_PI;
  auto w = -torch::log(1.0 - torch::rand({n}, gen, torch::kFloat64));
  return torch::sin(alpha * v) / torch::cos(v).pow(1.0 / alpha) *
         (torch::cos((1.0 - alpha) * v) / w).pow((1.0 - alpha) / alpha);
}

/// Student t with `df` degrees of freedom (tail index df): Z / sqrt(chi2_df / df).
inline torch::Tensor student_t(int df, int64_t n, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto z = torch::randn({n}, gen, torch::kFloat64);
  auto chi2 = torch::randn({df, n}, gen, torch::kFloat64).pow(2).sum(0);
  return z / (chi2 / df).sqrt();
}

}  // namespace htga::test

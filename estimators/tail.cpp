#include "estimators/tail.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <stdexcept>

#include "estimators/hill.h"

namespace htga::estimators {

namespace {

constexpr double kLog2 = 0.69314718055994530942;

torch::TensorOptions f32(const torch::Tensor& x) { return x.options().dtype(torch::kFloat32); }

torch::Tensor nan_scalar(const torch::Tensor& x) {
  return torch::full({}, std::numeric_limits<float>::quiet_NaN(), f32(x));
}

/// Magnitudes, flattened, in float32 (float64 kept as it is).
torch::Tensor magnitudes(const torch::Tensor& x) {
  auto m = x.detach().reshape({-1}).abs();
  return m.scalar_type() == torch::kFloat64 ? m : m.to(torch::kFloat32);
}

/// The `count` largest magnitudes, in decreasing order.
torch::Tensor top(const torch::Tensor& mags, int64_t count) {
  return std::get<0>(mags.topk(count, /*dim=*/0, /*largest=*/true, /*sorted=*/true));
}

/// NaN unless finite and positive: every undefined case ends as NaN, 0 or inf before this.
torch::Tensor defined_or_nan(const torch::Tensor& v) {
  auto a = v.to(torch::kFloat32);
  return torch::where(torch::isfinite(a) & (a > 0), a, torch::full_like(a, std::numeric_limits<float>::quiet_NaN()));
}

/// False for input with NaN/Inf or no spread: estimators that read only a few order
/// statistics (Pickands), or all values (stable), would otherwise return a number for them.
torch::Tensor usable(const torch::Tensor& mags) { return torch::isfinite(mags).all() & (mags.max() > mags.min()); }

torch::Tensor nan_unless(const torch::Tensor& ok, const torch::Tensor& v) {
  return torch::where(ok, v, torch::full_like(v, std::numeric_limits<float>::quiet_NaN()));
}

Estimate undefined(const torch::Tensor& x, int64_t n, std::string reason) {
  Estimate e;
  e.alpha = nan_scalar(x);
  e.std_error = nan_scalar(x);
  e.n = n;
  e.reason = std::move(reason);
  return e;
}

std::string too_few(int64_t need, int64_t n) {
  return "needs at least " + std::to_string(need) + " values, got " + std::to_string(n);
}

}  // namespace

int64_t choose_k(const KChoice& choice, int64_t n) {
  int64_t k = 0;
  switch (choice.rule) {
    case KRule::kSqrt:
    case KRule::kKs:
      k = hill_default_k(n);
      break;
    case KRule::kFraction:
      k = static_cast<int64_t>(std::floor(choice.fraction * static_cast<double>(n)));
      break;
    case KRule::kFixed:
      k = choice.k;
      break;
  }
  return std::clamp<int64_t>(k, 1, std::max<int64_t>(1, n - 1));
}

Estimate hill_estimate(const torch::Tensor& x, const HillOptions& options) {
  if (options.k.rule == KRule::kKs) return power_law_ks(x);
  const int64_t n = x.numel();
  const int64_t k = choose_k(options.k, n);
  if (n < 2 || k + 1 > n) return undefined(x, n, too_few(k + 1, n));
  if (options.unbiased && k < 2) return undefined(x, n, "the unbiased form needs k >= 2");
  Estimate e;
  e.alpha = hill(x, k);  // k / sum log(X(i) / X(k+1))
  if (options.unbiased) e.alpha = e.alpha * (static_cast<double>(k - 1) / static_cast<double>(k));
  e.std_error = e.alpha / std::sqrt(static_cast<double>(k));
  e.n = n;
  e.k = k;
  return e;
}

Estimate pickands(const torch::Tensor& x, int64_t k) {
  const int64_t n = x.numel();
  if (k <= 0) k = std::min(hill_default_k(n), n / 4);
  if (k < 1 || 4 * k > n) return undefined(x, n, too_few(4 * std::max<int64_t>(k, 1), n));
  auto mags = magnitudes(x);
  auto t = top(mags, 4 * k).to(torch::kFloat64);
  auto xk = t[k - 1], x2k = t[2 * k - 1], x4k = t[4 * k - 1];
  auto xi = ((xk - x2k) / (x2k - x4k)).log() / kLog2;
  Estimate e;
  e.alpha = nan_unless(usable(mags), defined_or_nan(1.0 / xi));
  // Asymptotic sd of xi (Dekkers and de Haan 1989), then the delta method for 1 / xi.
  auto two_xi = torch::pow(2.0, xi);
  auto sd_xi = xi * (torch::pow(2.0, 2 * xi + 1) + 1).sqrt() / (2 * (two_xi - 1) * kLog2 * std::sqrt(double(k)));
  e.std_error = torch::where(torch::isnan(e.alpha), e.alpha, (sd_xi / (xi * xi)).to(torch::kFloat32));
  e.n = n;
  e.k = k;
  return e;
}

Estimate moment(const torch::Tensor& x, int64_t k) {
  const int64_t n = x.numel();
  if (k <= 0) k = hill_default_k(n);
  if (k < 2 || k + 1 > n) return undefined(x, n, too_few(k + 1, n));
  auto mags = magnitudes(x);
  auto t = top(mags, k + 1).to(torch::kFloat64);
  auto l = t.narrow(0, 0, k).log() - t.narrow(0, k, 1).log();
  auto m1 = l.mean(), m2 = (l * l).mean();
  auto xi = m1 + 1 - 0.5 / (1 - m1 * m1 / m2);
  Estimate e;
  e.alpha = nan_unless(usable(mags), defined_or_nan(1.0 / xi));
  // For xi > 0 the estimator is asymptotically normal with variance (1 + xi^2) / k.
  auto se = (1 + xi * xi).sqrt() / (std::sqrt(double(k)) * xi * xi);
  e.std_error = torch::where(torch::isnan(e.alpha), e.alpha, se.to(torch::kFloat32));
  e.n = n;
  e.k = k;
  return e;
}

Estimate stable(const torch::Tensor& x, const StableOptions& options) {
  const int64_t n = x.numel();
  const int64_t base = options.k1 > 0 ? options.k1 : hill_default_k(n);
  std::vector<int64_t> sizes{base};
  if (options.median) sizes = {base / 4, base / 2, base, base * 2, base * 4};
  auto flat = x.detach().reshape({-1});
  if (flat.scalar_type() != torch::kFloat64) flat = flat.to(torch::kFloat32);
  constexpr double kEps = 2.220446049250313e-16;  // numpy.spacing(1), as in Simsekli et al.'s code
  std::vector<torch::Tensor> alphas;
  for (int64_t k1 : sizes) {
    const int64_t k2 = k1 > 0 ? n / k1 : 0;
    if (k1 < 2 || k2 < 2) continue;
    auto xs = flat.narrow(0, 0, k1 * k2);
    auto ys = xs.view({k2, k1}).sum(1);
    auto diff = ((ys.abs() + kEps).log().mean() - (xs.abs() + kEps).log().mean()) / std::log(double(k1));
    alphas.push_back(defined_or_nan(1.0 / diff));
  }
  if (alphas.empty()) return undefined(x, n, too_few(4, n) + " (2 blocks of 2)");
  Estimate e;
  e.alpha = nan_unless(usable(flat.abs()), alphas.size() == 1 ? alphas[0] : torch::stack(alphas).median());
  e.std_error = nan_scalar(x);
  e.n = n;
  e.k1 = base;
  e.k2 = base > 0 ? n / base : 0;
  return e;
}

Estimate power_law_ks(const torch::Tensor& x, const KsOptions& options) {
  const int64_t n = x.numel();
  const int64_t k_max = std::min<int64_t>(n - 1, static_cast<int64_t>(options.max_fraction * static_cast<double>(n)));
  if (k_max < options.k_min) {
    auto need = static_cast<int64_t>(std::ceil(options.k_min / options.max_fraction)) + 1;
    return undefined(x, n, too_few(need, n));
  }
  // Sorted tail in float64: cumulative log sums over up to n / 2 values.
  auto mags = magnitudes(x);
  auto logs = top(mags, k_max + 1).to(torch::kFloat64).log();
  auto cum = logs.cumsum(0);
  std::set<int64_t> ks;
  const double ratio = std::log(double(k_max) / options.k_min) / std::max<int64_t>(1, options.candidates - 1);
  for (int64_t i = 0; i < options.candidates; ++i)
    ks.insert(std::min(k_max, static_cast<int64_t>(std::llround(options.k_min * std::exp(ratio * i)))));
  std::vector<torch::Tensor> alphas, dists;
  for (int64_t k : ks) {
    auto log_xmin = logs[k];
    auto alpha = double(k) / (cum[k - 1] - log_xmin * double(k));
    // Survival function of the fit at the tail's values X(1) >= ... >= X(k), against the
    // empirical one, which steps from (j - 1) / k to j / k at X(j).
    auto model = (alpha * (log_xmin - logs.narrow(0, 0, k))).exp();
    auto j = torch::arange(1, k + 1, logs.options());
    auto d = torch::maximum((model - j / double(k)).abs(), (model - (j - 1) / double(k)).abs()).max();
    alphas.push_back(alpha);
    dists.push_back(d);
  }
  auto dist = torch::stack(dists);
  auto best = dist.argmin();
  auto k_tensor = torch::tensor(std::vector<int64_t>(ks.begin(), ks.end()), logs.options().dtype(torch::kInt64));
  Estimate e;
  e.alpha =
      nan_unless(usable(mags), defined_or_nan(torch::stack(alphas).index_select(0, best.reshape({1})).squeeze(0)));
  auto k_best = k_tensor.index_select(0, best.reshape({1})).squeeze(0);
  e.std_error = e.alpha / k_best.to(torch::kFloat32).sqrt();
  e.n = n;
  e.extra["k"] = k_best;
  e.extra["xmin"] = logs.index_select(0, k_best.reshape({1})).squeeze(0).exp();
  e.extra["ks_distance"] = dist.index_select(0, best.reshape({1})).squeeze(0);
  return e;
}

std::string explain_undefined(const torch::Tensor& x) {
  const int64_t n = x.numel();
  if (n == 0) return "no values";
  auto v = x.detach().reshape({-1}).to(torch::kCPU, torch::kFloat64);
  const auto non_finite = (~torch::isfinite(v)).sum().item<int64_t>();
  if (non_finite > 0) return std::to_string(non_finite) + " of " + std::to_string(n) + " values are NaN or infinite";
  auto mags = v.abs();
  const auto zeros = mags.eq(0).sum().item<int64_t>();
  if (zeros == n) return "all values are zero";
  if ((mags.max() - mags.min()).item<double>() == 0) return "all magnitudes are equal";
  if (2 * zeros >= n) return std::to_string(zeros) + " of " + std::to_string(n) + " values are zero";
  return "";
}

namespace {

using EstimatorFn = Estimate (*)(const torch::Tensor&, int64_t);
Estimate hill_k(const torch::Tensor& x, int64_t k) {
  HillOptions o;
  if (k > 0) o.k = {KRule::kFixed, k, 0.0};
  return hill_estimate(x, o);
}
Estimate stable_k(const torch::Tensor& x, int64_t k) { return stable(x, StableOptions{k, false}); }
Estimate ks_k(const torch::Tensor& x, int64_t) { return power_law_ks(x); }

/// The estimators by name, in the order they are listed (one line each).
const std::vector<std::pair<std::string, EstimatorFn>>& table() {
  static const std::vector<std::pair<std::string, EstimatorFn>> t{
      {"hill", hill_k}, {"pickands", pickands}, {"moment", moment}, {"stable", stable_k}, {"ks", ks_k}};
  return t;
}

}  // namespace

const std::vector<std::string>& estimator_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& [name, fn] : table()) v.push_back(name);
    return v;
  }();
  return names;
}

Estimate estimate(const std::string& name, const torch::Tensor& x, int64_t k) {
  for (const auto& [n, fn] : table())
    if (n == name) return fn(x, k);
  std::string valid;
  for (const auto& n : estimator_names()) valid += (valid.empty() ? "" : ", ") + n;
  throw std::invalid_argument("unknown estimator \"" + name + "\"; valid: " + valid);
}

}  // namespace htga::estimators

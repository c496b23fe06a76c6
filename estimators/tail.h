#pragma once
// Tail-index estimators on tensors. Each estimates alpha in P(|X| > x) ~ x^(-alpha) from the
// magnitudes of the values, on the tensor's device, and synchronises with the host only when
// the caller reads the result. Undefined results (too few values, zeros where logs are taken,
// constants, NaN/Inf) come back as NaN, never as an exception.
//
// Order statistics are in decreasing order: X(1) >= X(2) >= ... >= X(n).

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace htga::estimators {

/// What an estimator returns: the estimate and what it used.
struct Estimate {
  torch::Tensor alpha;                         // 0-dim float32 on the input's device; NaN when undefined
  torch::Tensor std_error;                     // 0-dim float32; asymptotic standard error, NaN where none is known
  int64_t n = 0;                               // values the estimator saw
  int64_t k = 0;                               // order statistics used (hill, pickands, moment); 0 when data-driven
  int64_t k1 = 0, k2 = 0;                      // stable: block size and number of blocks
  std::map<std::string, torch::Tensor> extra;  // data-dependent diagnostics (ks: k, xmin, distance)
  std::string reason;                          // why alpha is NaN, when that is known without reading the values
};

/// How Hill's k is chosen.
enum class KRule {
  kSqrt,      // floor(sqrt(n))
  kFraction,  // floor(fraction * n)
  kFixed,     // a given k
  kKs,        // the k minimising the Kolmogorov-Smirnov distance (Clauset, Shalizi, Newman 2009)
};

struct KChoice {
  KRule rule = KRule::kSqrt;
  int64_t k = 0;           // for kFixed
  double fraction = 0.05;  // for kFraction
};

/// k for the non-data-driven rules, clamped to [1, n - 1].
int64_t choose_k(const KChoice& choice, int64_t n);

struct HillOptions {
  KChoice k;
  bool unbiased = false;  // (k - 1) / sum instead of k / sum
};

/// Hill (1975): alpha = k / sum_{i=1..k} log(X(i) / X(k+1)); standard error alpha / sqrt(k).
/// With the unbiased form, (k - 1) / sum (unbiased for exact Pareto tails).
Estimate hill_estimate(const torch::Tensor& x, const HillOptions& options = {});

/// Pickands (1975): xi = log((X(k) - X(2k)) / (X(2k) - X(4k))) / log 2, alpha = 1 / xi;
/// needs 4k <= n. k = 0: floor(sqrt(n)), capped at n / 4.
Estimate pickands(const torch::Tensor& x, int64_t k = 0);

/// Moment estimator of Dekkers, Einmahl and de Haan (1989): with
/// M_j = (1/k) sum_{i=1..k} (log X(i) - log X(k+1))^j,
/// xi = M_1 + 1 - 1 / (2 (1 - M_1^2 / M_2)), alpha = 1 / xi. k = 0: floor(sqrt(n)).
Estimate moment(const torch::Tensor& x, int64_t k = 0);

struct StableOptions {
  int64_t k1 = 0;       // block size (0 = floor(sqrt(n)))
  bool median = false;  // median of the estimates for k1 * {1/4, 1/2, 1, 2, 4}
};

/// Block estimator of Mohammadi, Mohammadpour and Ogata (2015) for symmetric alpha-stable
/// samples, as Simsekli, Sagun and Gurbuzbalaban (2019) apply it to gradient noise: with
/// K = K1 * K2 values X_j (in the given order) and Y_i the sums of K2 consecutive blocks of K1,
///   1 / alpha = (mean_i log|Y_i| - mean_j log|X_j|) / log K1.
/// As in their code (umutsimsekli/sgd_tail_index), logs are of |.| + 2.2e-16.
Estimate stable(const torch::Tensor& x, const StableOptions& options = {});

struct KsOptions {
  int64_t candidates = 48;    // tail sizes tried, log-spaced
  int64_t k_min = 10;         // smallest tail size
  double max_fraction = 0.5;  // largest tail size as a fraction of n
};

/// Continuous power-law fit of Clauset, Shalizi and Newman (2009): for each candidate tail
/// size k (xmin = X(k+1)), the maximum-likelihood alpha = k / sum log(X(i) / xmin) and the
/// Kolmogorov-Smirnov distance between the tail's empirical survival function and
/// (xmin / x)^alpha; the k with the smallest distance wins. This alpha is the tail exponent
/// (the density's exponent is alpha + 1). Standard error alpha / sqrt(k). extra: k, xmin,
/// ks_distance.
Estimate power_law_ks(const torch::Tensor& x, const KsOptions& options = {});

/// Why a set of values has no defined tail index, read on the host (for reports and the CLI,
/// never in the training loop). Empty when nothing obvious is wrong.
std::string explain_undefined(const torch::Tensor& x);

/// The names `estimate` accepts: hill, pickands, moment, stable, ks.
const std::vector<std::string>& estimator_names();

/// Runs an estimator by name; `k` > 0 overrides the number of order statistics (hill,
/// pickands, moment) or the block size (stable). Throws std::invalid_argument for an unknown name.
Estimate estimate(const std::string& name, const torch::Tensor& x, int64_t k = 0);

}  // namespace htga::estimators

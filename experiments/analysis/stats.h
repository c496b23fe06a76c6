#pragma once
// Small-sample statistics for comparing optimizers across seeds: Student t intervals and tests,
// Welch's test, and the Wilcoxon signed-rank test. No LibTorch; undefined results are NaN.

#include <vector>

namespace htga::stats {

/// Arithmetic mean; NaN for no values.
double mean(const std::vector<double>& x);
/// Sample standard deviation (divisor n - 1); NaN for fewer than two values.
double sample_sd(const std::vector<double>& x);
/// Median (mean of the two middle values for even n); NaN for no values.
double median(std::vector<double> x);

/// Standard normal CDF, Phi(z).
double normal_cdf(double z);
/// Regularized incomplete beta function I_x(a, b), a, b > 0, 0 <= x <= 1 (continued fraction,
/// Numerical Recipes 3rd ed. section 6.4, evaluated with the modified Lentz method).
double incomplete_beta(double a, double b, double x);
/// CDF of Student's t with `df` degrees of freedom (df > 0, need not be an integer):
/// for t < 0, F(t) = I_{df/(df+t^2)}(df/2, 1/2) / 2, and F(t) = 1 - F(-t).
double t_cdf(double t, double df);
/// Two-sided tail probability P(|T| >= |t|) = I_{df/(df+t^2)}(df/2, 1/2).
double t_two_sided_p(double t, double df);
/// The p-quantile of Student's t (0 < p < 1), by bisection on t_cdf to about 1e-12.
double t_quantile(double p, double df);

/// Mean with a Student t confidence interval: mean -/+ t_{(1+level)/2, n-1} sd / sqrt(n).
struct MeanInterval {
  int n = 0;
  double mean = 0, sd = 0;  // sd: sample standard deviation
  double low = 0, high = 0;
};
MeanInterval mean_interval(const std::vector<double>& x, double level = 0.95);

/// A t-test of a difference: its estimate, confidence interval, statistic, degrees of freedom
/// and two-sided p-value (all NaN where undefined, e.g. fewer than two values).
struct TTest {
  int n = 0;            // pairs (paired) or total observations (Welch)
  double estimate = 0;  // mean difference (paired) or difference of means (Welch)
  double low = 0, high = 0;
  double t = 0, df = 0, p = 0;
};
/// One-sample t-test of mean(d) = 0; the paired t-test when d are differences.
TTest one_sample_t(const std::vector<double>& d, double level = 0.95);
/// Paired t-test of a - b (equal lengths, element i of a paired with element i of b).
TTest paired_t(const std::vector<double>& a, const std::vector<double>& b, double level = 0.95);
/// Welch's unequal-variance t-test of mean(a) - mean(b) with Welch-Satterthwaite degrees of
/// freedom, df = (va/na + vb/nb)^2 / ((va/na)^2/(na-1) + (vb/nb)^2/(nb-1)).
TTest welch_t(const std::vector<double>& a, const std::vector<double>& b, double level = 0.95);

/// Wilcoxon signed-rank test of differences d against a median of zero, two-sided.
/// Zero differences are dropped (Wilcoxon's method, scipy's zero_method="wilcox"); the
/// remaining n absolute differences get mid-ranks and W+ is the rank sum of the positive ones.
/// Without ties and n <= kWilcoxonExactMax the p-value is exact, from the null distribution of
/// W+ counted by dynamic programming over the ranks 1..n; otherwise the normal approximation
/// z = (|W+ - n(n+1)/4| - 1/2) / sigma, sigma^2 = n(n+1)(2n+1)/24 - sum(t^3 - t)/48 over tie
/// groups of size t (with continuity correction).
struct Wilcoxon {
  int n = 0;           // non-zero differences used
  double w_plus = 0;   // rank sum of the positive differences
  bool exact = false;  // p from the exact distribution
  double p = 0;        // NaN when n = 0
};
constexpr int kWilcoxonExactMax = 25;
Wilcoxon wilcoxon_signed_rank(const std::vector<double>& d);

/// p-values adjusted for testing them together, in the order given; NaN stays NaN and does not
/// count as a test. Holm (1979): step-down, controls the family-wise error rate. Benjamini and
/// Hochberg (1995): step-up, controls the false discovery rate. Each adjusted p is at most 1.
std::vector<double> holm(const std::vector<double>& p);
std::vector<double> benjamini_hochberg(const std::vector<double>& p);

}  // namespace htga::stats

#include "experiments/analysis/stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace htga::stats {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Continued fraction of I_x(a, b), Numerical Recipes 3rd ed. eq. 6.4.5 (betacf), modified Lentz.
double beta_continued_fraction(double a, double b, double x) {
  constexpr int kMaxIter = 500;
  constexpr double kEps = 1e-16, kTiny = 1e-300;
  const double qab = a + b, qap = a + 1, qam = a - 1;
  double c = 1, d = 1 - qab * x / qap;
  if (std::fabs(d) < kTiny) d = kTiny;
  d = 1 / d;
  double h = d;
  for (int m = 1; m <= kMaxIter; ++m) {
    const int m2 = 2 * m;
    double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1 / d;
    h *= d * c;
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1) < kEps) break;
  }
  return h;
}

// Upper tail P(T > t) for t >= 0: I_{df/(df+t^2)}(df/2, 1/2) / 2, without cancellation.
double t_upper_tail(double t, double df) {
  if (std::isinf(t)) return 0;
  return 0.5 * incomplete_beta(df / 2, 0.5, df / (df + t * t));
}

}  // namespace

double mean(const std::vector<double>& x) {
  if (x.empty()) return kNaN;
  double s = 0;
  for (double v : x) s += v;
  return s / static_cast<double>(x.size());
}

double sample_sd(const std::vector<double>& x) {
  if (x.size() < 2) return kNaN;
  const double m = mean(x);
  double s = 0;
  for (double v : x) s += (v - m) * (v - m);
  return std::sqrt(s / static_cast<double>(x.size() - 1));
}

double median(std::vector<double> x) {
  if (x.empty()) return kNaN;
  const size_t mid = x.size() / 2;
  std::nth_element(x.begin(), x.begin() + mid, x.end());
  if (x.size() % 2) return x[mid];
  const double upper = x[mid];
  return (*std::max_element(x.begin(), x.begin() + mid) + upper) / 2;
}

double normal_cdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

double incomplete_beta(double a, double b, double x) {
  if (!(a > 0) || !(b > 0) || !(x >= 0) || !(x <= 1)) return kNaN;
  if (x == 0) return 0;
  if (x == 1) return 1;
  const double front =
      std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x));
  // The continued fraction converges fast for x < (a + 1) / (a + b + 2); use the symmetry
  // I_x(a, b) = 1 - I_{1-x}(b, a) on the other side.
  if (x < (a + 1) / (a + b + 2)) return front * beta_continued_fraction(a, b, x) / a;
  return 1 - front * beta_continued_fraction(b, a, 1 - x) / b;
}

double t_cdf(double t, double df) {
  if (std::isnan(t) || !(df > 0)) return kNaN;
  const double tail = t_upper_tail(std::fabs(t), df);
  return t < 0 ? tail : 1 - tail;
}

double t_two_sided_p(double t, double df) {
  if (std::isnan(t) || !(df > 0)) return kNaN;
  return std::min(1.0, 2 * t_upper_tail(std::fabs(t), df));
}

double t_quantile(double p, double df) {
  if (!(p > 0) || !(p < 1) || !(df > 0)) return kNaN;
  if (p == 0.5) return 0;
  if (p < 0.5) return -t_quantile(1 - p, df);
  // Solve P(T > t) = 1 - p for t > 0: the upper tail decreases in t, so bisect on it (working
  // on the tail keeps full relative precision for p close to 1).
  const double target = 1 - p;
  double lo = 0, hi = 1;
  while (t_upper_tail(hi, df) > target) {
    lo = hi;
    hi *= 2;
    if (hi > 1e300) return std::numeric_limits<double>::infinity();
  }
  for (int i = 0; i < 200 && hi - lo > 1e-15 * hi; ++i) {
    const double mid = (lo + hi) / 2;
    (t_upper_tail(mid, df) > target ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

MeanInterval mean_interval(const std::vector<double>& x, double level) {
  MeanInterval r;
  r.n = static_cast<int>(x.size());
  r.mean = mean(x);
  r.sd = sample_sd(x);
  if (r.n < 2) {
    r.low = r.high = kNaN;
    return r;
  }
  const double half = t_quantile((1 + level) / 2, r.n - 1) * r.sd / std::sqrt(static_cast<double>(r.n));
  r.low = r.mean - half;
  r.high = r.mean + half;
  return r;
}

TTest one_sample_t(const std::vector<double>& d, double level) {
  TTest r;
  const MeanInterval m = mean_interval(d, level);
  r.n = m.n;
  r.estimate = m.mean;
  r.low = m.low;
  r.high = m.high;
  r.df = m.n >= 2 ? m.n - 1 : kNaN;
  if (m.n < 2) {
    r.t = r.p = kNaN;
    return r;
  }
  const double se = m.sd / std::sqrt(static_cast<double>(m.n));
  // Identical differences: the test is undefined when they are all zero, certain otherwise.
  r.t = se > 0 ? m.mean / se : (m.mean == 0 ? kNaN : std::copysign(INFINITY, m.mean));
  r.p = t_two_sided_p(r.t, r.df);
  return r;
}

TTest paired_t(const std::vector<double>& a, const std::vector<double>& b, double level) {
  if (a.size() != b.size()) throw std::invalid_argument("paired_t: samples of different sizes");
  std::vector<double> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return one_sample_t(d, level);
}

TTest welch_t(const std::vector<double>& a, const std::vector<double>& b, double level) {
  TTest r;
  r.n = static_cast<int>(a.size() + b.size());
  r.estimate = mean(a) - mean(b);
  if (a.size() < 2 || b.size() < 2) {
    r.low = r.high = r.t = r.df = r.p = kNaN;
    return r;
  }
  const double na = static_cast<double>(a.size()), nb = static_cast<double>(b.size());
  const double va = std::pow(sample_sd(a), 2) / na, vb = std::pow(sample_sd(b), 2) / nb;
  const double se = std::sqrt(va + vb);
  if (!(se > 0)) {
    r.low = r.high = r.estimate;
    r.df = kNaN;
    r.t = r.estimate == 0 ? kNaN : std::copysign(INFINITY, r.estimate);
    r.p = r.estimate == 0 ? kNaN : 0;
    return r;
  }
  r.df = (va + vb) * (va + vb) / (va * va / (na - 1) + vb * vb / (nb - 1));
  r.t = r.estimate / se;
  r.p = t_two_sided_p(r.t, r.df);
  const double half = t_quantile((1 + level) / 2, r.df) * se;
  r.low = r.estimate - half;
  r.high = r.estimate + half;
  return r;
}

Wilcoxon wilcoxon_signed_rank(const std::vector<double>& d) {
  Wilcoxon r;
  std::vector<double> nz;
  for (double v : d)
    if (v != 0 && !std::isnan(v)) nz.push_back(v);
  const int n = static_cast<int>(nz.size());
  r.n = n;
  if (n == 0) {
    r.p = kNaN;
    return r;
  }
  // Mid-ranks of |d|; tie groups remembered for the variance correction.
  std::vector<int> order(n);
  for (int i = 0; i < n; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](int i, int j) { return std::fabs(nz[i]) < std::fabs(nz[j]); });
  std::vector<double> rank(n);
  double tie_term = 0;  // sum over tie groups of t^3 - t
  for (int i = 0; i < n;) {
    int j = i;
    while (j + 1 < n && std::fabs(nz[order[j + 1]]) == std::fabs(nz[order[i]])) ++j;
    const double mid = (i + j) / 2.0 + 1;  // ranks i+1 .. j+1
    for (int k = i; k <= j; ++k) rank[order[k]] = mid;
    const double t = j - i + 1;
    tie_term += t * t * t - t;
    i = j + 1;
  }
  for (int i = 0; i < n; ++i)
    if (nz[i] > 0) r.w_plus += rank[i];

  if (tie_term == 0 && n <= kWilcoxonExactMax) {
    // count[s] = number of subsets of the ranks {1..n} whose sum is s; under H0 each of the 2^n
    // sign patterns is equally likely.
    const int max_sum = n * (n + 1) / 2;
    std::vector<double> count(max_sum + 1, 0.0);
    count[0] = 1;
    for (int k = 1; k <= n; ++k)
      for (int s = max_sum; s >= k; --s) count[s] += count[s - k];
    const int w = static_cast<int>(std::lround(r.w_plus));
    double below = 0, above = 0;  // P(W+ <= w), P(W+ >= w) in counts
    for (int s = 0; s <= max_sum; ++s) {
      if (s <= w) below += count[s];
      if (s >= w) above += count[s];
    }
    const double total = std::ldexp(1.0, n);
    r.exact = true;
    r.p = std::min(1.0, 2 * std::min(below, above) / total);
    return r;
  }
  const double nn = n;
  const double mu = nn * (nn + 1) / 4;
  const double var = nn * (nn + 1) * (2 * nn + 1) / 24 - tie_term / 48;
  if (!(var > 0)) {
    r.p = kNaN;
    return r;
  }
  const double z = std::max(0.0, std::fabs(r.w_plus - mu) - 0.5) / std::sqrt(var);
  r.p = std::min(1.0, std::erfc(z / std::sqrt(2.0)));  // 2 (1 - Phi(z))
  return r;
}

namespace {

/// The indices of the finite p-values, by ascending p (ties by position).
std::vector<size_t> ascending(const std::vector<double>& p) {
  std::vector<size_t> order;
  for (size_t i = 0; i < p.size(); ++i)
    if (std::isfinite(p[i])) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&p](size_t a, size_t b) { return p[a] < p[b]; });
  return order;
}

}  // namespace

std::vector<double> holm(const std::vector<double>& p) {
  std::vector<double> out(p.size(), std::numeric_limits<double>::quiet_NaN());
  const auto order = ascending(p);
  const double m = static_cast<double>(order.size());
  double running = 0;
  for (size_t j = 0; j < order.size(); ++j) {
    running = std::max(running, std::min(1.0, (m - static_cast<double>(j)) * p[order[j]]));
    out[order[j]] = running;
  }
  return out;
}

std::vector<double> benjamini_hochberg(const std::vector<double>& p) {
  std::vector<double> out(p.size(), std::numeric_limits<double>::quiet_NaN());
  const auto order = ascending(p);
  const double m = static_cast<double>(order.size());
  double running = 1;
  for (size_t j = order.size(); j-- > 0;) {
    running = std::min(running, std::min(1.0, m / static_cast<double>(j + 1) * p[order[j]]));
    out[order[j]] = running;
  }
  return out;
}

}  // namespace htga::stats

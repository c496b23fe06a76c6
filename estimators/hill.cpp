#include "estimators/hill.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace htga::estimators {

int64_t hill_default_k(int64_t n) {
  auto k = static_cast<int64_t>(std::floor(std::sqrt(static_cast<double>(n))));
  // sqrt in floating point can land just below an exact square.
  while ((k + 1) * (k + 1) <= n) ++k;
  return k;
}

namespace {

/// Hill on the CPU without sorting: a threshold taken from a strided sample keeps about
/// 2 (k + 1) candidates in one pass over the data, and nth_element finds the top k + 1 among
/// them (everything, if the sample misjudged). The same order statistics as topk, so the same
/// estimate up to rounding, at a fraction of topk's cost on gradient-sized vectors.
/// `mag(i)` is the i-th magnitude, computed on the fly (so a difference need not be stored).
template <typename Mag>
double hill_cpu(const Mag& mag, int64_t n, int64_t k) {
  using V = decltype(mag(0));  // float for float input: half the memory traffic of double
  const int64_t need = k + 1;
  std::vector<V> sample;
  const int64_t stride = std::max<int64_t>(1, n / 4096);
  for (int64_t i = 0; i < n; i += stride) sample.push_back(mag(i));
  const auto s = static_cast<int64_t>(sample.size());
  const int64_t rank = std::min<int64_t>(s - 1, (2 * need * s) / n + 1);  // ~2 (k + 1) values above
  std::nth_element(sample.begin(), sample.begin() + rank, sample.end(), std::greater<V>());
  V threshold = sample[rank];
  if (need * 4 > n) threshold = -1;  // small input: keep everything
  // A zero (or NaN) threshold keeps the nonzero values: with fewer than k + 1 of them,
  // X(k+1) = 0 and the estimate is undefined anyway (dead units give exact zeros).
  if (threshold >= 0 && !(threshold > 0)) threshold = 0;

  std::vector<V> top;
  top.reserve(static_cast<size_t>(need) * 4);
  bool bad = false;
  auto collect = [&](V t) {
    top.clear();
    int nan_seen = 0;
    for (int64_t i = 0; i < n; ++i) {
      const V a = mag(i);
      nan_seen |= (a != a);  // branch-free: NaN never passes `a > t`, so look for it here
      if (a > t) top.push_back(a);
    }
    bad = nan_seen != 0;
  };
  collect(threshold);
  if (static_cast<int64_t>(top.size()) < need && threshold > 0) collect(-1);
  if (bad || static_cast<int64_t>(top.size()) < need) return std::nan("");
  std::nth_element(top.begin(), top.begin() + k, top.end(), std::greater<V>());
  const double xk1 = top[k];
  double sum_log = 0;
  for (int64_t i = 0; i < k; ++i) sum_log += std::log(top[i] / xk1);
  return static_cast<double>(k) / sum_log;
}

}  // namespace

torch::Tensor hill(const torch::Tensor& x, int64_t k) {
  const int64_t n = x.numel();
  if (k <= 0) k = hill_default_k(n);
  const bool cpu_float =
      x.device().is_cpu() && (x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kFloat64);
  if (!cpu_float || k < 1 || k + 1 > n) return hill_topk(x, k);
  auto c = x.detach().contiguous();
  double a = 0;
  if (c.scalar_type() == torch::kFloat32) {
    const float* p = c.data_ptr<float>();
    a = hill_cpu([p](int64_t i) { return std::abs(p[i]); }, n, k);
  } else {
    const double* p = c.data_ptr<double>();
    a = hill_cpu([p](int64_t i) { return std::abs(p[i]); }, n, k);
  }
  // Undefined cases come out as inf (all equal), 0 (an infinite value or X(k+1) = 0) or NaN.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  return torch::full({}, std::isfinite(a) && a > 0 ? static_cast<float>(a) : nan, x.options().dtype(torch::kFloat32));
}

torch::Tensor hill_of_difference(const torch::Tensor& a, const torch::Tensor& b, int64_t k) {
  const int64_t n = a.numel();
  if (k <= 0) k = hill_default_k(n);
  const bool fused = a.device().is_cpu() && a.scalar_type() == torch::kFloat32 && b.scalar_type() == torch::kFloat32 &&
                     a.is_contiguous() && b.is_contiguous() && b.numel() == n && k >= 1 && k + 1 <= n;
  if (!fused) return hill(a - b, k);
  const float* pa = a.data_ptr<float>();
  const float* pb = b.data_ptr<float>();
  const double v = hill_cpu([pa, pb](int64_t i) { return std::abs(pa[i] - pb[i]); }, n, k);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  return torch::full({}, std::isfinite(v) && v > 0 ? static_cast<float>(v) : nan, a.options().dtype(torch::kFloat32));
}

namespace {

/// One pass over g and m: d = g - m, m += w d, and the |d| above `t` collected (t < 0: all of
/// them). Returns true when a NaN or infinity was seen.
// Vectorised (SSE on any x86-64): per block of 64, the EMA update, |d| and a count of values
// above the threshold without branches; only blocks with hits are scanned again.
__attribute__((optimize("tree-vectorize"))) bool fused_pass(const float* g, float* m, int64_t n, float w, float t,
                                                            std::vector<float>& top) {
  int bad = 0;
  float buf[64];
  for (int64_t start = 0; start < n; start += 64) {
    const int64_t len = std::min<int64_t>(64, n - start);
    const float* gs = g + start;
    float* ms = m + start;
    int hits = 0;
    if (len == 64) {
      for (int j = 0; j < 64; ++j) {
        const float d = gs[j] - ms[j];
        ms[j] += w * d;
        const float a = std::fabs(d);
        buf[j] = a;
        hits += a > t;
        bad |= !(a <= std::numeric_limits<float>::max());  // NaN or infinity
      }
    } else {
      for (int64_t j = 0; j < len; ++j) {
        const float d = gs[j] - ms[j];
        ms[j] += w * d;
        const float a = std::fabs(d);
        buf[j] = a;
        hits += a > t;
        bad |= !(a <= std::numeric_limits<float>::max());
      }
    }
    if (hits)
      for (int64_t j = 0; j < len; ++j)
        if (buf[j] > t) top.push_back(buf[j]);
  }
  return bad != 0;
}

}  // namespace

torch::Tensor hill_ema_noise(const torch::Tensor& g, torch::Tensor& mean, double rho, int64_t k) {
  const int64_t n = g.numel();
  if (k <= 0) k = hill_default_k(n);
  const bool fused = g.device().is_cpu() && g.scalar_type() == torch::kFloat32 &&
                     mean.scalar_type() == torch::kFloat32 && g.is_contiguous() && mean.is_contiguous() &&
                     mean.numel() == n && rho > 0 && k >= 1 && 4 * (k + 1) <= n;
  if (!fused) {
    auto d = g - mean;
    mean.lerp_(g, 1.0 - rho);
    return hill(d, k);
  }
  const float* pg = g.data_ptr<float>();
  float* pm = mean.data_ptr<float>();
  const int64_t need = k + 1;
  // Threshold from a strided sample of |g - m| (before the update), as in hill_cpu.
  std::vector<float> sample;
  const int64_t stride = std::max<int64_t>(1, n / 4096);
  for (int64_t i = 0; i < n; i += stride) sample.push_back(std::fabs(pg[i] - pm[i]));
  const auto s = static_cast<int64_t>(sample.size());
  const int64_t rank = std::min<int64_t>(s - 1, (2 * need * s) / n + 1);
  std::nth_element(sample.begin(), sample.begin() + rank, sample.end(), std::greater<float>());
  float t = sample[rank];
  if (!(t > 0)) t = 0;  // NaN is caught by the pass; zeros: keep the nonzero values
  std::vector<float> top;
  top.reserve(static_cast<size_t>(need) * 4);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto opts = g.options().dtype(torch::kFloat32);
  bool bad = fused_pass(pg, pm, n, static_cast<float>(1.0 - rho), t, top);
  if (static_cast<int64_t>(top.size()) < need && t > 0) {
    // The sample misjudged the tail. The mean is already updated: g - m_t = rho (g - m_{t-1}),
    // the same tail index, so collect everything from that (w = 0 leaves m alone).
    top.clear();
    bad = fused_pass(pg, pm, n, 0.0f, -1.0f, top) || bad;
  }
  if (bad || static_cast<int64_t>(top.size()) < need) return torch::full({}, nan, opts);
  std::nth_element(top.begin(), top.begin() + k, top.end(), std::greater<float>());
  const double xk1 = top[k];
  double sum_log = 0;
  for (int64_t i = 0; i < k; ++i) sum_log += std::log(top[i] / xk1);
  const double a = static_cast<double>(k) / sum_log;
  return torch::full({}, std::isfinite(a) && a > 0 ? static_cast<float>(a) : nan, opts);
}

torch::Tensor hill_topk(const torch::Tensor& x, int64_t k) {
  const int64_t n = x.numel();
  if (k <= 0) k = hill_default_k(n);
  auto opts = x.options().dtype(torch::kFloat32);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  if (k < 1 || k + 1 > n) return torch::full({}, nan, opts);
  auto mags = x.detach().reshape({-1}).abs();
  if (mags.scalar_type() != torch::kFloat64) mags = mags.to(torch::kFloat32);
  // topk keeps everything on the device (no host synchronisation); NaN counts as largest, so
  // NaN input poisons the sum and yields NaN.
  auto top = std::get<0>(mags.topk(k + 1, /*dim=*/0, /*largest=*/true, /*sorted=*/true));
  auto threshold = top.narrow(0, k, 1);
  auto sum_log = (top.narrow(0, 0, k) / threshold).log().sum();
  auto alpha = (static_cast<double>(k) / sum_log).to(torch::kFloat32);
  auto defined = torch::isfinite(alpha) & (alpha > 0);
  return torch::where(defined, alpha, torch::full({}, nan, opts));
}

}  // namespace htga::estimators

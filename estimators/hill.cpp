#include "estimators/hill.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <utility>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

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
  // Elsewhere (a GPU) without a sort: about the cost of two reductions, and graph-safe.
  if (!cpu_float || k < 1 || k + 1 > n) return x.device().is_cpu() ? hill_topk(x, k) : hill_radix(x, k);
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

/// What one block of the fused pass found.
struct BlockResult {
  std::vector<float> top;  // the |d| above the threshold, in index order
  double sumsq = 0;        // sum of g^2
  bool bad = false;        // a NaN in |d| (an infinity is a candidate and makes the estimate undefined)
};

/// The candidates among 64 values |d| (`buf`) whose bits are set in `mask` (not below the
/// threshold; NaN too), appended in index order; a NaN marks the block bad.
void take_marked(const float* buf, uint64_t mask, float t, BlockResult& r) {
  while (mask) {
    const float v = buf[__builtin_ctzll(mask)];
    mask &= mask - 1;
    if (v > t)
      r.top.push_back(v);
    else
      r.bad = true;  // NaN
  }
}

/// The values past the last whole 64 (and the whole of a short block): the same arithmetic one
/// value at a time. Adds their g^2 to `sumsq` and returns it.
double fused_tail(const float* g, float* m, int64_t from, int64_t n, float w, float t, double sumsq, BlockResult& r) {
  for (int64_t j = from; j < n; ++j) {
    const float d = g[j] - m[j];
    m[j] += w * d;
    const float a = std::fabs(d);
    if (a > t) r.top.push_back(a);
    r.bad = r.bad || a != a;
    sumsq += static_cast<double>(g[j]) * g[j];
  }
  return sumsq;
}

/// One pass over g[0, n) and m: d = g - m, m += w d, the sum of g^2, and the |d| above `t`
/// collected in index order (t < 0: all of them). Per 64 values: the EMA update, |d|, one mask
/// of those not below the threshold (NaN included) and g^2 added to 64 fixed lanes (lane j % 64),
/// summed in lane order at the end. A candidate is about one value in 250, so only a 64 with a
/// bit set is looked at again. No FMA anywhere: this portable form and the AVX2 one below give
/// the same roundings, so the results do not depend on the CPU.
void fused_block_portable(const float* __restrict g, float* __restrict m, int64_t n, float w, float t, BlockResult& r) {
  alignas(32) float buf[64];
  float lanes[64] = {};
  const int64_t full = n / 64 * 64;
  for (int64_t start = 0; start < full; start += 64) {
    const float* __restrict gs = g + start;
    float* __restrict ms = m + start;
    int hits = 0;
    for (int j = 0; j < 64; ++j) {
      const float gj = gs[j];
      const float d = gj - ms[j];
      ms[j] += w * d;
      const float a = std::fabs(d);
      buf[j] = a;
      hits += !(a <= t);
      lanes[j] += gj * gj;
    }
    if (!hits) continue;
    uint64_t mask = 0;
    for (int j = 0; j < 64; ++j) mask |= static_cast<uint64_t>(!(buf[j] <= t)) << j;
    take_marked(buf, mask, t, r);
  }
  double sumsq = 0;
  for (float l : lanes) sumsq += l;
  r.sumsq = fused_tail(g, m, full, n, w, t, sumsq, r);
}

#if defined(__x86_64__)
/// One group of 8 of fused_block_avx2: the EMA update, |d| to buf, its comparison (not a <= t:
/// above it, or NaN) ORed into `any`, g^2 added to `lane`.
__attribute__((target("avx2"), always_inline)) inline void eight(const float* gs, float* ms, float* buf, int v,
                                                                 __m256 vw, __m256 vt, __m256& any, __m256& lane) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 gv = _mm256_loadu_ps(gs + 8 * v);
  const __m256 mv = _mm256_loadu_ps(ms + 8 * v);
  const __m256 d = _mm256_sub_ps(gv, mv);
  _mm256_storeu_ps(ms + 8 * v, _mm256_add_ps(mv, _mm256_mul_ps(vw, d)));
  const __m256 a = _mm256_and_ps(d, abs_mask);
  _mm256_store_ps(buf + 8 * v, a);
  any = _mm256_or_ps(any, _mm256_cmp_ps(a, vt, _CMP_NLE_UQ));
  lane = _mm256_add_ps(lane, _mm256_mul_ps(gv, gv));
}

/// fused_block_portable in AVX2 intrinsics: the 64 lanes live in eight registers and the mask is
/// one OR of comparisons per 64 (the compiler's version of the portable loop spilled its lanes
/// and summed counts across registers, and took twice the instructions).
__attribute__((target("avx2"))) void fused_block_avx2(const float* __restrict g, float* __restrict m, int64_t n,
                                                      float w, float t, BlockResult& r) {
  alignas(32) float buf[64];
  const __m256 vw = _mm256_set1_ps(w), vt = _mm256_set1_ps(t);
  __m256 l0 = _mm256_setzero_ps(), l1 = l0, l2 = l0, l3 = l0, l4 = l0, l5 = l0, l6 = l0, l7 = l0;
  __m256 any;
  const int64_t full = n / 64 * 64;
  for (int64_t start = 0; start < full; start += 64) {
    const float* gs = g + start;
    float* ms = m + start;
    any = _mm256_setzero_ps();
    eight(gs, ms, buf, 0, vw, vt, any, l0);
    eight(gs, ms, buf, 1, vw, vt, any, l1);
    eight(gs, ms, buf, 2, vw, vt, any, l2);
    eight(gs, ms, buf, 3, vw, vt, any, l3);
    eight(gs, ms, buf, 4, vw, vt, any, l4);
    eight(gs, ms, buf, 5, vw, vt, any, l5);
    eight(gs, ms, buf, 6, vw, vt, any, l6);
    eight(gs, ms, buf, 7, vw, vt, any, l7);
    if (!_mm256_movemask_ps(any)) continue;
    uint64_t mask = 0;
    for (int v = 0; v < 8; ++v)
      mask |= static_cast<uint64_t>(_mm256_movemask_ps(_mm256_cmp_ps(_mm256_load_ps(buf + 8 * v), vt, _CMP_NLE_UQ)))
              << (8 * v);
    take_marked(buf, mask, t, r);
  }
  alignas(32) float lanes[64];
  const __m256 all[8] = {l0, l1, l2, l3, l4, l5, l6, l7};
  for (int v = 0; v < 8; ++v) _mm256_store_ps(lanes + 8 * v, all[v]);
  double sumsq = 0;
  for (float l : lanes) sumsq += l;
  r.sumsq = fused_tail(g, m, full, n, w, t, sumsq, r);
}
#endif

std::atomic<bool> portable_only{false};

void fused_block(const float* g, float* m, int64_t n, float w, float t, BlockResult& r) {
#if defined(__x86_64__)
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (avx2 && !portable_only.load(std::memory_order_relaxed)) return fused_block_avx2(g, m, n, w, t, r);
#endif
  fused_block_portable(g, m, n, w, t, r);
}

/// One range of the fused pass: g[0, n) and m with threshold t; the pass's findings go to *out.
struct PassJob {
  const float* g;
  float* m;
  int64_t n;
  float t;
  BlockResult* out;
};

/// The fused pass over each job's range in blocks of a fixed size, all jobs' blocks shared by
/// ATen's intra-op threads in one parallel region; each job's blocks are joined in block order
/// into its `out`, so nothing depends on the thread count or on which jobs run together. The
/// blocks' buffers are kept from call to call (per calling thread).
void fused_passes(const PassJob* jobs, size_t count, float w) {
  constexpr int64_t kBlock = 16384;
  static thread_local std::vector<BlockResult> kept;
  static thread_local std::vector<std::pair<size_t, int64_t>> where;  // (job, offset) per block
  where.clear();
  for (size_t j = 0; j < count; ++j)
    for (int64_t off = 0; off < jobs[j].n; off += kBlock) where.push_back({j, off});
  const auto blocks = static_cast<int64_t>(where.size());
  kept.resize(where.size());
  for (auto& part : kept) {
    part.top.clear();
    part.bad = false;
  }
  // The caller's buffers: a thread_local named in the lambda would be the worker's.
  BlockResult* parts = kept.data();
  const std::pair<size_t, int64_t>* at = where.data();
  at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const PassJob& job = jobs[at[b].first];
      const int64_t off = at[b].second;
      fused_block(job.g + off, job.m + off, std::min(kBlock, job.n - off), w, job.t, parts[b]);
    }
  });
  int64_t b = 0;
  for (size_t j = 0; j < count; ++j) {
    BlockResult& all = *jobs[j].out;
    all.top.clear();
    all.sumsq = 0;
    all.bad = false;
    for (int64_t off = 0; off < jobs[j].n; off += kBlock, ++b) {
      all.top.insert(all.top.end(), parts[b].top.begin(), parts[b].top.end());
      all.sumsq += parts[b].sumsq;
      all.bad = all.bad || parts[b].bad;
    }
  }
}

void fused_pass(const float* g, float* m, int64_t n, float w, float t, BlockResult& all) {
  const PassJob job{g, m, n, t, &all};
  fused_passes(&job, 1, w);
}

/// A sample of |g - m| to choose thresholds from: 4096 values in 256 runs of 16 spread evenly
/// over the vector (a run is one cache line of g and one of m, so the sample costs 1/16 of the
/// cache misses of 4096 scattered values; the runs still cover every layer). The lines are
/// prefetched first, so that their misses overlap instead of following one another.
std::vector<float> sample_of(const float* pg, const float* pm, int64_t n) {
  constexpr int64_t kRuns = 256, kRun = 16;
  std::vector<float> sample(static_cast<size_t>(std::min(n, kRuns * kRun)));
  if (n <= kRuns * kRun) {
    for (int64_t i = 0; i < n; ++i) sample[i] = std::fabs(pg[i] - pm[i]);
    return sample;
  }
  const int64_t stride = n / kRuns;
  for (int64_t r = 0; r < kRuns; ++r) {
    __builtin_prefetch(pg + r * stride);  // a run's first line and its last (runs are not aligned)
    __builtin_prefetch(pg + r * stride + kRun - 1);
    __builtin_prefetch(pm + r * stride);
    __builtin_prefetch(pm + r * stride + kRun - 1);
  }
  float* out = sample.data();
  for (int64_t r = 0; r < kRuns; ++r)
    for (int64_t i = r * stride; i < r * stride + kRun; ++i) *out++ = std::fabs(pg[i] - pm[i]);
  return sample;
}

/// The value of rank k (0-based, from the largest) among v[0, n) (no NaN), reordering v. A
/// quickselect whose partitions write each value to both ends of a second buffer and move one
/// end on, with no branch per value: nth_element's comparisons were mispredicted about half
/// the time on candidates that follow no order.
float kth_largest(float* v, int64_t n, int64_t k) {
  static thread_local std::vector<float> scratch;
  if (static_cast<int64_t>(scratch.size()) < n) scratch.resize(static_cast<size_t>(n));
  float *src = v, *dst = scratch.data();
  while (n > 32) {
    const float x = src[0], y = src[n / 2], z = src[n - 1];
    const float p = std::max(std::min(x, y), std::min(std::max(x, y), z));  // the median of three
    int64_t lo = 0, hi = n - 1;
    for (int64_t i = 0; i < n; ++i) {  // dst: the values above p, then the rest
      const float e = src[i];
      dst[lo] = e;
      dst[hi] = e;
      const bool gt = e > p;
      lo += gt;
      hi -= !gt;
    }
    if (k < lo) {  // p is not above itself, so lo < n: the range shrinks
      std::swap(src, dst);
      n = lo;
      continue;
    }
    int64_t eq = lo;
    hi = n - 1;
    for (int64_t i = lo; i < n; ++i) {  // src[lo, n): the values equal to p, then those below
      const float e = dst[i];
      src[eq] = e;
      src[hi] = e;
      const bool ge = e >= p;
      eq += ge;
      hi -= !ge;
    }
    if (k < eq) return p;
    src += eq;
    dst += eq;
    n -= eq;
    k -= eq;
  }
  std::nth_element(src, src + k, src + n, std::greater<float>());
  return src[k];
}

/// A threshold with about `many` of the n values above it, judged by the sample.
/// NaN is caught by the pass; a zero threshold keeps the nonzero values.
float threshold_for(const std::vector<float>& sample, int64_t n, int64_t many) {
  const auto s = static_cast<int64_t>(sample.size());
  const int64_t rank = std::min<int64_t>(s - 1, (many * s) / n + 1);
  static thread_local std::vector<float> values;
  values.resize(sample.size());
  for (int64_t i = 0; i < s; ++i) values[i] = sample[i] == sample[i] ? sample[i] : 0;  // NaN is left to the pass
  const float t = kth_largest(values.data(), s, rank);
  return t > 0 ? t : 0;
}

/// Hill's estimate from the candidates (at least k + 1 of them, in index order): X(k+1) from a
/// copy, then the logs summed over the candidates above it in index order, so that the sum
/// depends neither on how many the threshold let through nor on the thread count (values
/// equal to X(k+1) add log 1 = 0 either way).
double hill_of_candidates(const std::vector<float>& top, int64_t k) {
  static thread_local std::vector<float> order;
  order.assign(top.begin(), top.end());
  const double xk1 = kth_largest(order.data(), static_cast<int64_t>(order.size()), k);
  // The sum of logs as logs of products of up to 16 ratios: one log per 16 values. A ratio of
  // floats is at most about 2.4e83, so a product is logged before it passes 1e200 and can
  // never overflow.
  double sum_log = 0, product = 1;
  int in_product = 0;
  for (float v : top) {
    if (!(v > xk1)) continue;
    if (in_product == 16 || product > 1e200) {
      sum_log += std::log(product);
      product = 1;
      in_product = 0;
    }
    product *= v / xk1;
    ++in_product;
  }
  sum_log += std::log(product);
  return static_cast<double>(k) / sum_log;
}

/// A 0-dim float32 CPU tensor holding v: one allocation, not full()'s fill kernel.
torch::Tensor cpu_scalar(float v, const torch::TensorOptions& opts) {
  auto out = torch::empty({}, opts);
  *out.data_ptr<float>() = v;
  return out;
}

}  // namespace

void detail::use_portable_pass(bool portable) { portable_only = portable; }

namespace {

/// True when hill_ema_noise works on g and mean's memory directly: float32 CPU tensors, contiguous,
/// of one length, and a mean that moves (rho > 0). Elsewhere it is tensor operations.
bool cpu_flat(const torch::Tensor& g, const torch::Tensor& mean, double rho) {
  return g.device().is_cpu() && mean.device().is_cpu() && g.scalar_type() == torch::kFloat32 &&
         mean.scalar_type() == torch::kFloat32 && g.is_contiguous() && mean.is_contiguous() &&
         mean.numel() == g.numel() && rho > 0;
}

/// True when a range of n values with k order statistics takes the fused pass: a threshold from a
/// sample then keeps a small part of it. Smaller ranges (a bias vector) are read whole.
bool pass_sized(int64_t n, int64_t k) { return k >= 1 && 4 * (k + 1) <= n; }

/// hill_ema_noise's CPU path for one range, in three parts: choose() a threshold from a sample,
/// the fused pass (fused_passes, shared with other ranges), finish() the estimate.
struct FusedRange {
  const float* g = nullptr;
  float* m = nullptr;
  int64_t n = 0, k = 0;
  std::vector<float> sample;
  float t = 0;
  BlockResult r, more;

  void choose() {
    sample = sample_of(g, m, n);
    t = threshold_for(sample, n, 2 * (k + 1));
  }
  PassJob job() { return {g, m, n, t, &r}; }

  /// After the pass (which updated the mean): alpha_hat, NaN when undefined.
  float finish(double rho) {
    const int64_t need = k + 1;
    if (static_cast<int64_t>(r.top.size()) < need && t > 0 && !r.bad) {
      // The sample misjudged the tail. The mean is already updated: g - m_t = rho (g - m_{t-1}),
      // the same tail index, so collect again from that (w = 0 leaves m alone) with a threshold
      // for 8 (k + 1) values scaled alike, and if that falls short too, everything.
      const float wider = threshold_for(sample, n, 8 * need) * static_cast<float>(rho);
      for (const float again : {wider < t * static_cast<float>(rho) ? wider : 0.0f, -1.0f}) {
        if (again == 0) continue;
        fused_pass(g, m, n, 0.0f, again, more);
        std::swap(r.top, more.top);
        r.bad = more.bad;
        if (static_cast<int64_t>(r.top.size()) >= need || r.bad) break;
      }
    }
    const float nan = std::numeric_limits<float>::quiet_NaN();
    if (r.bad || static_cast<int64_t>(r.top.size()) < need) return nan;
    const double a = hill_of_candidates(r.top, k);
    return std::isfinite(a) && a > 0 ? static_cast<float>(a) : nan;
  }
};

/// A range too small for the pass (a bias vector, say): d = g - m, m += w d and the sum of g^2
/// with the pass's arithmetic, then Hill on all of |d| (NaN when k + 1 > n). No tensor
/// operation: each cost more than the whole range.
float small_range(const float* g, float* m, int64_t n, int64_t k, float w, double& sumsq) {
  static thread_local std::vector<float> d;
  d.resize(static_cast<size_t>(n));
  sumsq = 0;
  for (int64_t i = 0; i < n; ++i) {
    d[i] = g[i] - m[i];
    m[i] += w * d[i];
    sumsq += static_cast<double>(g[i]) * g[i];
  }
  const float nan = std::numeric_limits<float>::quiet_NaN();
  if (k < 1 || k + 1 > n) return nan;
  const float* pd = d.data();
  const double a = hill_cpu([pd](int64_t i) { return std::abs(pd[i]); }, n, k);
  return std::isfinite(a) && a > 0 ? static_cast<float>(a) : nan;
}

}  // namespace

torch::Tensor hill_ema_noise(const torch::Tensor& g, torch::Tensor& mean, double rho, int64_t k,
                             EmaHillExtras* extras) {
  const int64_t n = g.numel();
  if (k <= 0) k = hill_default_k(n);
  if (extras) extras->has_sumsq = false;
  if (!cpu_flat(g, mean, rho)) {
    auto d = g - mean;
    mean.lerp_(g, 1.0 - rho);
    return hill(d, k);
  }
  // The CPU path is the slices' path with one slice.
  const SlicesEstimate est = hill_ema_noise_slices(g, mean, rho, {{0, n}}, {k});
  if (extras) {
    extras->has_sumsq = est.has_sumsq;
    extras->sumsq = est.sumsq;
  }
  return cpu_scalar(est.alpha[0], g.options().dtype(torch::kFloat32));
}

SlicesEstimate hill_ema_noise_slices(const torch::Tensor& g, torch::Tensor& mean, double rho,
                                     const std::vector<std::pair<int64_t, int64_t>>& slices,
                                     const std::vector<int64_t>& ks) {
  if (ks.size() != slices.size()) throw std::invalid_argument("hill_ema_noise_slices: one k per slice");
  for (const auto& [off, len] : slices)
    if (off < 0 || len < 0 || off + len > g.numel())
      throw std::invalid_argument("hill_ema_noise_slices: a slice outside the vector");
  SlicesEstimate out;
  out.alpha.assign(slices.size(), std::numeric_limits<float>::quiet_NaN());
  if (!cpu_flat(g, mean, rho)) {  // tensor operations, slice by slice
    out.has_sumsq = true;
    for (size_t i = 0; i < slices.size(); ++i) {
      auto gi = g.narrow(0, slices[i].first, slices[i].second);
      auto mi = mean.narrow(0, slices[i].first, slices[i].second);
      EmaHillExtras extras;
      out.alpha[i] = hill_ema_noise(gi, mi, rho, ks[i], &extras).item<float>();
      out.has_sumsq = out.has_sumsq && extras.has_sumsq;
      out.sumsq += extras.sumsq;
    }
    if (!out.has_sumsq) out.sumsq = 0;
    return out;
  }
  const float* pg = g.data_ptr<float>();
  float* pm = mean.data_ptr<float>();
  const float w = static_cast<float>(1.0 - rho);
  static thread_local std::vector<FusedRange> ranges;
  static thread_local std::vector<PassJob> jobs;
  static thread_local std::vector<size_t> fused;  // the slices on the shared pass, in slice order
  ranges.resize(slices.size());
  jobs.clear();
  fused.clear();
  for (size_t i = 0; i < slices.size(); ++i) {
    const auto [off, len] = slices[i];
    const int64_t k = ks[i] > 0 ? ks[i] : hill_default_k(len);
    FusedRange& r = ranges[i];
    if (!pass_sized(len, k)) {
      out.alpha[i] = small_range(pg + off, pm + off, len, k, w, r.r.sumsq);
      continue;
    }
    r.g = pg + off;
    r.m = pm + off;
    r.n = len;
    r.k = k;
    r.choose();
    jobs.push_back(r.job());
    fused.push_back(i);
  }
  fused_passes(jobs.data(), jobs.size(), w);
  for (size_t i : fused) out.alpha[i] = ranges[i].finish(rho);
  out.has_sumsq = true;
  for (size_t i = 0; i < slices.size(); ++i) out.sumsq += ranges[i].r.sumsq;
  return out;
}

float nan_median(const std::vector<float>& values) {
  std::vector<float> v;
  for (float x : values)
    if (!std::isnan(x)) v.push_back(x);
  if (v.empty()) return std::numeric_limits<float>::quiet_NaN();
  const auto mid = v.begin() + static_cast<std::ptrdiff_t>((v.size() - 1) / 2);  // the lower median, as torch's
  std::nth_element(v.begin(), mid, v.end());
  return *mid;
}

namespace {

/// Given a histogram of `bins` bins, counts the values from the top: the bin (0-dim int64)
/// holding the value of rank `rank` (1-based from the largest, a 0-dim int64 tensor) and that
/// value's rank within its bin.
std::pair<torch::Tensor, torch::Tensor> bin_of_rank(const torch::Tensor& hist, const torch::Tensor& rank) {
  const int64_t bins = hist.numel();
  auto from_top = hist.flip(0).cumsum(0).flip(0);  // from_top[b]: values in bins b and above
  auto bin = (from_top >= rank).sum() - 1;         // the last bin whose count from the top reaches the rank
  auto padded = torch::cat({from_top, torch::zeros({1}, from_top.options())});
  auto above = padded.index_select(0, (bin + 1).clamp_max(bins).reshape({1})).reshape({});
  return {bin, rank - above};
}

}  // namespace

torch::Tensor hill_radix(const torch::Tensor& x, int64_t k) {
  const int64_t n = x.numel();
  if (k <= 0) k = hill_default_k(n);
  if (x.scalar_type() == torch::kFloat64) return hill_topk(x, k);
  auto opts = x.options().dtype(torch::kFloat32);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  if (k < 1 || k + 1 > n) return torch::full({}, nan, opts);
  auto mags = x.detach().reshape({-1}).to(torch::kFloat32).abs();
  auto bits = mags.view(torch::kInt32);  // sign bit clear: 0 .. 0x7fffffff, ordered like the values
  auto count_opts = mags.options().dtype(torch::kInt64);
  auto ones = torch::ones({n}, count_opts);
  auto rank = torch::full({}, k + 1, count_opts);
  // High 16 bits: 32768 bins (bit 31 is clear).
  auto high = bits.bitwise_right_shift(16).to(torch::kInt64);
  auto [bin, rank_in_bin] = bin_of_rank(torch::zeros({32768}, count_opts).scatter_add_(0, high, ones), rank);
  // Low 16 bits of the values in that bin; the others go to a 65537th bin, dropped.
  auto low = bits.bitwise_and(0xffff).to(torch::kInt64);
  auto in_bin = torch::where(high.eq(bin), low, torch::full({}, 65536, count_opts));
  auto hist = torch::zeros({65537}, count_opts).scatter_add_(0, in_bin, ones).narrow(0, 0, 65536);
  auto [sub, unused] = bin_of_rank(hist, rank_in_bin);
  auto xk1 = (bin * 65536 + sub).to(torch::kInt32).reshape({1}).view(torch::kFloat32).reshape({});
  // Over the values above X(k+1): at most k of them; ties at X(k+1) add log 1 = 0 either way.
  // NaN is not <= X(k+1), so it poisons the sum as it does topk's.
  auto terms = torch::where(mags.le(xk1), torch::zeros({}, opts), (mags / xk1).log());
  auto alpha = (static_cast<double>(k) / terms.sum()).to(torch::kFloat32);
  auto defined = torch::isfinite(alpha) & (alpha > 0);
  return torch::where(defined, alpha, torch::full({}, nan, opts));
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

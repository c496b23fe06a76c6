#pragma once
// The Hill estimator of the tail index alpha, P(|X| > x) ~ x^(-alpha).
//
// With the magnitudes in decreasing order X(1) >= X(2) >= ... >= X(n) (Hill 1975):
//   alpha_hat = k / sum_{i=1..k} log(X(i) / X(k+1)).

#include <torch/torch.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace htga::estimators {

/// floor(sqrt(n)), the default number of order statistics.
int64_t hill_default_k(int64_t n);

/// Hill's alpha_hat of the magnitudes of `x` (any shape, flattened; any device) using the `k`
/// largest (0 = floor(sqrt(n))). Returns a 0-dim float32 tensor on x's device without
/// synchronising with the host. The result is NaN when it is undefined: fewer than k + 1
/// values, X(k+1) = 0 (too many zeros), all top values equal, or non-finite input.
/// On the CPU the order statistics are found by a threshold pass instead of topk (same
/// values, about 5x cheaper on gradient-sized vectors); elsewhere hill_radix runs.
torch::Tensor hill(const torch::Tensor& x, int64_t k = 0);

/// hill(a - b, k) without storing a - b on the CPU (float32, contiguous); otherwise exactly
/// hill(a - b, k).
torch::Tensor hill_of_difference(const torch::Tensor& a, const torch::Tensor& b, int64_t k = 0);

/// What hill_ema_noise hands to gradient clipping.
struct EmaHillExtras {
  /// The sum of g^2, when the pass computed it (the CPU path; has_sumsq says so): the
  /// gradient's norm for clipping without reading g again.
  bool has_sumsq = false;
  double sumsq = 0;
};

/// The online noise source and Hill in one: returns hill(g - mean, k) and updates the mean in
/// place, mean += (1 - rho) (g - mean). On the CPU (float32, contiguous, rho > 0) it is one pass
/// over g and mean with nothing gradient-sized allocated, cut into fixed blocks that ATen's
/// intra-op threads share: the result does not depend on the number of threads; a vector too
/// small for a threshold (4 (k + 1) > n) is read whole with the same arithmetic (no FMA). Both
/// give the sum of g^2 in `extras`. Elsewhere the same in tensor operations.
torch::Tensor hill_ema_noise(const torch::Tensor& g, torch::Tensor& mean, double rho, int64_t k = 0,
                             EmaHillExtras* extras = nullptr);

/// What hill_ema_noise_slices found: alpha_hat per slice (NaN where undefined), and the sum of
/// g^2 over all slices when the CPU path computed it (has_sumsq).
struct SlicesEstimate {
  std::vector<float> alpha;
  bool has_sumsq = false;
  double sumsq = 0;
};

/// hill_ema_noise on each slice (offset, length) of the flat g and mean, with ks[i] order
/// statistics (0 = the slice's default): bit for bit what hill_ema_noise gives each slice on
/// its own, but on the CPU the slices share one pass over g and mean, in one parallel region,
/// with no tensor operation per slice (per layer, a pass per slice paid the threads' start-up
/// and several tensor operations for every parameter tensor: a ResNet has dozens).
/// `sumsq` is the slices' sums in slice order, as a caller adding up per-slice extras would.
/// std::invalid_argument for a slice outside g or a count of ks that is not the slices'.
SlicesEstimate hill_ema_noise_slices(const torch::Tensor& g, torch::Tensor& mean, double rho,
                                     const std::vector<std::pair<int64_t, int64_t>>& slices,
                                     const std::vector<int64_t>& ks);

/// The median of the values that are not NaN, the lower of the two middle ones for an even count
/// (torch's nanmedian); NaN when every value is.
float nan_median(const std::vector<float>& values);

namespace detail {
/// For tests: true makes hill_ema_noise's pass take its portable loop even on a CPU with AVX2
/// (the two give the same bits); false (the default) picks by CPU.
void use_portable_pass(bool portable);
}  // namespace detail

/// The topk formulation of hill(), on any device without host synchronisation.
torch::Tensor hill_topk(const torch::Tensor& x, int64_t k = 0);

/// hill() without a sort, for GPUs and CUDA graphs: X(k+1) is found by a radix select on the
/// bit patterns of |x| as float32 (for non-negative floats they order like the values, NaN
/// above infinity): a histogram of the high 16 bits finds the bin that holds the (k+1)-th
/// largest, a histogram of the low 16 bits within that bin finds the value, then one reduction
/// sums log(X(i) / X(k+1)) over the values above it. The same order statistic as topk (so the
/// same estimate up to the order of a float sum), in tensor operations of fixed shapes with no
/// host synchronisation (scatter_add_, not bincount, which reads its maximum back). float64
/// input goes to hill_topk.
torch::Tensor hill_radix(const torch::Tensor& x, int64_t k = 0);

}  // namespace htga::estimators

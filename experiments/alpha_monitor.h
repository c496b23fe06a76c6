#pragma once
// alpha_hat while training: which noise is estimated (online EMA noise, raw gradient, probe),
// over what (all parameters, or each parameter tensor), by which estimator.

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "estimators/hill.h"
#include "estimators/noise.h"
#include "experiments/torch_compat.h"

namespace htga::experiments {

/// What alpha_hat is estimated on: g_t - m_t (m_t an EMA of gradients), the raw gradient
/// coordinates, or a probe of fresh minibatch gradients at fixed weights minus their mean.
enum class NoiseSource { kNoise, kGradient, kProbe };
/// Over what: all parameters as one sample, or each parameter tensor on its own.
enum class Scope { kGlobal, kLayer };

/// The names grids and the registry use ("noise", "gradient", "probe"; "global", "layer").
const char* name_of(NoiseSource source);
const char* name_of(Scope scope);
/// Inverse of name_of; throws std::logic_error for a name the registry does not list (grids
/// are validated before they get here).
NoiseSource noise_source_named(const std::string& name);
Scope scope_named(const std::string& name);

struct AlphaSettings {
  std::string estimator = "hill";           // a name of the estimator registry
  NoiseSource noise = NoiseSource::kNoise;  // what is estimated
  Scope scope = Scope::kGlobal;             // over what
  int64_t every = 1;                        // estimate every this many steps (0 = never)
  double noise_ema = 0.9;                   // rho of the gradient EMA
  int64_t probe_batches = 8;                // minibatch gradients per probe
  int64_t subsample = 0;                    // coordinates estimated on (0 = all; global scope)
  int64_t k = 0;                            // order statistics / block size (0 = estimator default)
  double k_fraction = 0;                    // k as a fraction of n (0 = use k)
  bool graph = true;                        // on CUDA, replay the estimator as one CUDA graph
};

/// Estimates alpha_hat of the gradient noise after each backward pass, on the device, with no
/// host synchronisation. Gradients are read from the flat buffer that bind_flat_gradients
/// made; the estimator never changes them and never draws from the training RNG.
class AlphaMonitor {
 public:
  /// `params` and `flat_grad` as bound by estimators::bind_flat_gradients; `seed` fixes the
  /// coordinate subset.
  AlphaMonitor(const AlphaSettings& settings, const std::vector<torch::Tensor>& params, torch::Tensor flat_grad,
               uint64_t seed);

  struct Result {
    torch::Tensor alpha;   // 0-dim float32; NaN when there is no estimate this step
    torch::Tensor layers;  // [layers] float32 for scope layer at estimate steps, else undefined
  };

  /// Called after the backward pass of `step`. For noise = probe, `probe_gradient` must fill
  /// the flat gradient buffer with the gradient of one fresh minibatch at the current weights
  /// (it is called probe_batches times; the step's own gradient is restored afterwards).
  Result observe(int64_t step, const std::function<void()>& probe_gradient = {});

  int64_t num_layers() const { return static_cast<int64_t>(slices_.size()); }

  /// The sum of squares of the gradient, when the last observe() computed it on the way (the
  /// fused CPU pass): gradient clipping then need not read the gradient again.
  std::optional<double> gradient_sumsq() const { return sumsq_; }

  /// On CUDA: whether the estimator runs as a captured CUDA graph, and why not when capture
  /// failed (empty otherwise).
  bool graphed() const { return graph_ != nullptr; }
  const std::string& graph_failure() const { return graph_failure_; }

  /// For checkpoints: the gradient EMA (empty before the first gradient).
  torch::Tensor state() const;
  void load_state(const torch::Tensor& state);

 private:
  torch::Tensor estimate_one(const torch::Tensor& a, const torch::Tensor* b) const;
  /// observe() for each noise source; the fused EMA + Hill pass of the noise source.
  Result observe_noise(bool due);
  Result fused_noise_estimate();
  Result observe_probe(const std::function<void()>& probe_gradient);
  /// The estimate of a - b (b null: of a) over the settings' scope.
  Result estimate_scoped(const torch::Tensor& a, const torch::Tensor* b) const;
  /// The fused EMA + Hill estimate (global or per layer): {alpha} or {alpha, layers}.
  std::vector<torch::Tensor> fused_hill(torch::Tensor& mean);
  int64_t k_for(int64_t n) const;

  AlphaSettings s_;
  torch::Tensor flat_grad_;
  estimators::EmaNoise ema_;
  std::optional<estimators::Subsample> subsample_;
  std::vector<std::pair<int64_t, int64_t>> slices_;  // (offset, length) per parameter tensor
  // Per estimate (global: one; layer: one per slice): the threshold carried between steps.
  std::vector<estimators::EmaHillExtras> extras_;
  std::optional<double> sumsq_;
  torch::Tensor nan_;
  // CUDA graph of fused_hill: captured after two eager estimates (lazy kernel loading and the
  // allocator's first blocks happen outside the capture), recaptured if the mean is replaced.
  std::unique_ptr<compat::Graph> graph_;
  const void* graph_mean_ = nullptr;
  int64_t eager_estimates_ = 0;
  bool try_graph_ = false;
  std::string graph_failure_;
};

}  // namespace htga::experiments

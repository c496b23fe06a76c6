#include "experiments/alpha_monitor.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "estimators/hill.h"
#include "estimators/tail.h"

namespace htga::experiments {

const char* name_of(NoiseSource source) {
  switch (source) {
    case NoiseSource::kNoise:
      return "noise";
    case NoiseSource::kGradient:
      return "gradient";
    case NoiseSource::kProbe:
      return "probe";
  }
  throw std::logic_error("unknown noise source");
}

const char* name_of(Scope scope) { return scope == Scope::kGlobal ? "global" : "layer"; }

NoiseSource noise_source_named(const std::string& name) {
  for (auto s : {NoiseSource::kNoise, NoiseSource::kGradient, NoiseSource::kProbe})
    if (name == name_of(s)) return s;
  throw std::logic_error("internal error: noise source \"" + name + "\" passed grid validation");
}

Scope scope_named(const std::string& name) {
  for (auto s : {Scope::kGlobal, Scope::kLayer})
    if (name == name_of(s)) return s;
  throw std::logic_error("internal error: scope \"" + name + "\" passed grid validation");
}

AlphaMonitor::AlphaMonitor(const AlphaSettings& settings, const std::vector<torch::Tensor>& params,
                           torch::Tensor flat_grad, uint64_t seed)
    : s_(settings), flat_grad_(std::move(flat_grad)), ema_(settings.noise_ema) {
  int64_t offset = 0;
  for (const auto& p : params) {
    slices_.push_back({offset, p.numel()});
    offset += p.numel();
  }
  if (s_.subsample > 0 && s_.scope == Scope::kGlobal)
    subsample_.emplace(flat_grad_.numel(), s_.subsample, seed ^ 0x5eed5eedULL, flat_grad_.device());
  nan_ = torch::full({}, std::numeric_limits<float>::quiet_NaN(), flat_grad_.options().dtype(torch::kFloat32));
  try_graph_ = s_.graph && flat_grad_.is_cuda();
}

std::vector<torch::Tensor> AlphaMonitor::fused_hill(torch::Tensor& mean) {
  const bool global = s_.scope == Scope::kGlobal;
  extras_.resize(global ? 1 : slices_.size());
  if (global) {
    auto alpha = estimators::hill_ema_noise(flat_grad_, mean, s_.noise_ema, k_for(flat_grad_.numel()), &extras_[0]);
    if (extras_[0].has_sumsq) sumsq_ = extras_[0].sumsq;
    return {alpha};
  }
  if (flat_grad_.device().is_cpu()) {
    // One pass over every slice; the layers' estimates and their median without tensor ops.
    std::vector<int64_t> ks;
    for (const auto& [off, len] : slices_) ks.push_back(k_for(len));
    const auto est = estimators::hill_ema_noise_slices(flat_grad_, mean, s_.noise_ema, slices_, ks);
    if (est.has_sumsq) sumsq_ = est.sumsq;
    auto opts = flat_grad_.options().dtype(torch::kFloat32);
    auto layers = torch::empty({static_cast<int64_t>(est.alpha.size())}, opts);
    std::copy(est.alpha.begin(), est.alpha.end(), layers.data_ptr<float>());
    auto median = torch::empty({}, opts);
    *median.data_ptr<float>() = estimators::nan_median(est.alpha);
    return {median, layers};
  }
  std::vector<torch::Tensor> per;
  double sumsq = 0;
  bool all = true;
  for (size_t i = 0; i < slices_.size(); ++i) {
    auto [off, len] = slices_[i];
    auto m = mean.narrow(0, off, len);
    per.push_back(estimators::hill_ema_noise(flat_grad_.narrow(0, off, len), m, s_.noise_ema, k_for(len), &extras_[i]));
    all = all && extras_[i].has_sumsq;
    sumsq += extras_[i].sumsq;
  }
  if (all) sumsq_ = sumsq;
  auto layers = torch::stack(per);
  return {layers.nanmedian(), layers};
}

torch::Tensor AlphaMonitor::state() const {
  return ema_.started() ? ema_.mean() : torch::empty({0}, flat_grad_.options());
}

void AlphaMonitor::load_state(const torch::Tensor& state) {
  ema_.set_mean(state.numel() == 0 ? torch::Tensor() : state.to(flat_grad_.device()));
}

int64_t AlphaMonitor::k_for(int64_t n) const {
  if (s_.k_fraction > 0) return std::max<int64_t>(1, static_cast<int64_t>(std::floor(s_.k_fraction * n)));
  return s_.k;
}

/// The estimate of a - b (b null: of a).
torch::Tensor AlphaMonitor::estimate_one(const torch::Tensor& a, const torch::Tensor* b) const {
  const int64_t k = k_for(a.numel());
  if (s_.estimator == "hill") return b ? estimators::hill_of_difference(a, *b, k) : estimators::hill(a, k);
  return estimators::estimate(s_.estimator, b ? a - *b : a, k).alpha;
}

AlphaMonitor::Result AlphaMonitor::observe(int64_t step, const std::function<void()>& probe_gradient) {
  sumsq_.reset();
  const bool due = s_.every > 0 && step % s_.every == 0;
  switch (s_.noise) {
    case NoiseSource::kNoise:
      return observe_noise(due);
    case NoiseSource::kGradient:
      return due ? estimate_scoped(flat_grad_, nullptr) : Result{nan_, {}};
    case NoiseSource::kProbe:
      return due && probe_gradient ? observe_probe(probe_gradient) : Result{nan_, {}};
  }
  throw std::logic_error("unknown noise source");
}

AlphaMonitor::Result AlphaMonitor::observe_noise(bool due) {
  if (s_.every <= 0) return {nan_, {}};
  // The fast path: Hill and the mean's update in one pass (per layer, on each slice).
  if (due && ema_.started() && s_.estimator == "hill" && !subsample_ && s_.noise_ema > 0) return fused_noise_estimate();
  // The mean is updated every step, estimated or not: the EMA must see every gradient.
  if (!ema_.update(flat_grad_) || !due) return {nan_, {}};
  return estimate_scoped(flat_grad_, &ema_.mean());  // g_t - m_t = rho (g_t - m_{t-1}): the same tail index
}

AlphaMonitor::Result AlphaMonitor::fused_noise_estimate() {
  auto& mean = ema_.mutable_mean();
  if (graph_ && graph_mean_ != mean.data_ptr()) graph_.reset();  // a checkpoint replaced the mean
  if (try_graph_ && !graph_ && eager_estimates_ >= 2) {
    graph_ = std::make_unique<compat::Graph>();
    if (graph_->capture(
            flat_grad_.device(), [this, &mean] { return fused_hill(mean); }, &graph_failure_)) {
      graph_mean_ = mean.data_ptr();
    } else {
      graph_.reset();
      try_graph_ = false;  // eager from now on; graph_failure_ says why
    }
  }
  std::vector<torch::Tensor> outs;
  if (graph_) {
    graph_->replay();
    // The graph's outputs are overwritten by the next replay: the caller keeps copies.
    for (const auto& t : graph_->outputs()) outs.push_back(t.clone());
  } else {
    outs = fused_hill(mean);
    ++eager_estimates_;
  }
  Result r{outs[0], {}};
  if (outs.size() > 1) r.layers = outs[1];
  return r;
}

AlphaMonitor::Result AlphaMonitor::observe_probe(const std::function<void()>& probe_gradient) {
  Result r{nan_, {}};
  auto own = flat_grad_.clone();
  std::vector<torch::Tensor> grads;
  for (int64_t i = 0; i < s_.probe_batches; ++i) {
    probe_gradient();
    grads.push_back(subsample_ ? subsample_->apply(flat_grad_) : flat_grad_.clone());
  }
  flat_grad_.copy_(own);
  auto g = torch::stack(grads);
  auto a = (g - g.mean(0, /*keepdim=*/true)).reshape({-1});  // pooled deviations from the probe mean
  if (s_.scope == Scope::kGlobal) {
    r.alpha = estimate_one(a, nullptr);
    return r;
  }
  // Per layer: the probe's columns of each parameter tensor.
  auto dev = (g - g.mean(0, true));
  std::vector<torch::Tensor> per;
  for (auto [off, len] : slices_) per.push_back(estimate_one(dev.narrow(1, off, len).reshape({-1}), nullptr));
  r.layers = torch::stack(per);
  r.alpha = r.layers.nanmedian();
  return r;
}

AlphaMonitor::Result AlphaMonitor::estimate_scoped(const torch::Tensor& a, const torch::Tensor* b) const {
  Result r{nan_, {}};
  if (s_.scope == Scope::kGlobal) {
    if (subsample_) {
      auto sa = subsample_->apply(a);
      if (b) {
        auto sb = subsample_->apply(*b);
        r.alpha = estimate_one(sa, &sb);
      } else {
        r.alpha = estimate_one(sa, nullptr);
      }
    } else {
      r.alpha = estimate_one(a, b);
    }
    return r;
  }
  std::vector<torch::Tensor> per;
  for (auto [off, len] : slices_) {
    auto sa = a.narrow(0, off, len);
    if (b) {
      auto sb = b->narrow(0, off, len);
      per.push_back(estimate_one(sa, &sb));
    } else {
      per.push_back(estimate_one(sa, nullptr));
    }
  }
  r.layers = torch::stack(per);
  r.alpha = r.layers.nanmedian();
  return r;
}

}  // namespace htga::experiments

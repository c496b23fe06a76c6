#include "experiments/alpha_monitor.h"

#include <catch2/catch.hpp>
#include <cmath>

#include "estimators/hill.h"
#include "estimators/noise.h"
#include "estimators/tail.h"
#include "samplers.h"
#include "test_util.h"

using htga::experiments::AlphaMonitor;
using htga::experiments::AlphaSettings;

namespace {

/// Two parameter tensors (300 and 200 values) with gradients bound to one flat buffer.
struct Fixture {
  std::vector<torch::Tensor> params{torch::zeros({30, 10}).requires_grad_(), torch::zeros({200}).requires_grad_()};
  torch::Tensor flat = htga::estimators::bind_flat_gradients(params);
  void set(uint64_t t) { flat.copy_(htga::test::pareto(1.6, 500, 1000 + t).to(torch::kFloat32)); }
};

double value(const torch::Tensor& t) { return t.item<double>(); }

}  // namespace

TEST_CASE("monitor, online noise: Hill of g_t - m_{t-1} every step", "[estimators]") {
  Fixture f;
  AlphaMonitor m(AlphaSettings{}, f.params, f.flat, 0);
  htga::estimators::EmaNoise reference(0.9);
  for (int64_t step = 0; step < 5; ++step) {
    f.set(step);
    auto noise = reference.observe_flat(f.flat);
    auto r = m.observe(step);
    if (step == 0) {
      CHECK(std::isnan(value(r.alpha)));  // no mean yet
      continue;
    }
    CHECK(value(r.alpha) == Approx(value(htga::estimators::hill(noise))).epsilon(1e-4));
    CHECK_FALSE(r.layers.defined());
  }
  CHECK(f.params[0].grad().data_ptr() == f.flat.data_ptr());  // gradients are views of the buffer
}

TEST_CASE("monitor: raw gradient, every N steps, other estimators, subsets", "[estimators]") {
  Fixture f;
  AlphaSettings s;
  s.noise = htga::experiments::NoiseSource::kGradient;
  s.every = 3;
  s.estimator = "stable";
  AlphaMonitor m(s, f.params, f.flat, 0);
  for (int64_t step = 0; step < 7; ++step) {
    f.set(step);
    auto r = m.observe(step);
    if (step % 3 != 0) {
      CHECK(std::isnan(value(r.alpha)));
    } else {
      CHECK(value(r.alpha) == Approx(value(htga::estimators::stable(f.flat).alpha)).epsilon(1e-5));
    }
  }
  s.estimator = "hill";
  s.every = 1;
  s.subsample = 100;
  AlphaMonitor sub(s, f.params, f.flat, /*seed=*/7);
  htga::estimators::Subsample pick(500, 100, 7 ^ 0x5eed5eedULL, torch::kCPU);
  f.set(3);
  CHECK(value(sub.observe(0).alpha) == Approx(value(htga::estimators::hill(pick.apply(f.flat)))).epsilon(1e-5));
  s.k_fraction = 0.1;
  s.subsample = 0;
  AlphaMonitor frac(s, f.params, f.flat, 0);
  CHECK(value(frac.observe(0).alpha) == Approx(value(htga::estimators::hill(f.flat, 50))).epsilon(1e-5));
}

TEST_CASE("monitor, layer scope: one estimate per parameter tensor, median as the step's", "[estimators]") {
  Fixture f;
  AlphaSettings s;
  s.scope = htga::experiments::Scope::kLayer;
  s.noise = htga::experiments::NoiseSource::kGradient;
  AlphaMonitor m(s, f.params, f.flat, 0);
  f.set(1);
  auto r = m.observe(0);
  REQUIRE(r.layers.defined());
  REQUIRE(r.layers.numel() == 2);
  const double a0 = value(htga::estimators::hill(f.flat.narrow(0, 0, 300)));
  const double a1 = value(htga::estimators::hill(f.flat.narrow(0, 300, 200)));
  CHECK(value(r.layers[0]) == Approx(a0).epsilon(1e-5));
  CHECK(value(r.layers[1]) == Approx(a1).epsilon(1e-5));
  CHECK(value(r.alpha) == Approx(std::min(a0, a1)).epsilon(1e-5));  // nanmedian of two: the lower
}

TEST_CASE("monitor, probe: pooled deviations of fresh minibatch gradients; own gradient restored", "[estimators]") {
  Fixture f;
  AlphaSettings s;
  s.noise = htga::experiments::NoiseSource::kProbe;
  s.probe_batches = 4;
  AlphaMonitor m(s, f.params, f.flat, 0);
  f.set(0);
  const auto own = f.flat.clone();
  uint64_t calls = 0;
  std::vector<torch::Tensor> seen;
  auto probe = [&] {
    f.set(100 + calls++);
    seen.push_back(f.flat.clone());
  };
  auto r = m.observe(0, probe);
  CHECK(calls == 4);
  CHECK(f.flat.equal(own));
  auto g = torch::stack(seen);
  auto pooled = (g - g.mean(0, true)).reshape({-1});
  CHECK(value(r.alpha) == Approx(value(htga::estimators::hill(pooled))).epsilon(1e-5));
}

TEST_CASE("monitor on CUDA: the graph replays give the eager estimates exactly (skipped without a GPU)", "[cuda]") {
  if (!torch::cuda::is_available())
    htga::test::skip("no CUDA device (checked on the device machine by scripts/device-check)");
  const torch::Device cuda(torch::kCUDA, 0);
  for (const std::string scope : {"global", "layer"}) {
    INFO(scope);
    auto make = [&] {
      return std::vector<torch::Tensor>{torch::zeros({300, 100}, torch::TensorOptions().device(cuda)).requires_grad_(),
                                        torch::zeros({2000}, torch::TensorOptions().device(cuda)).requires_grad_()};
    };
    auto pa = make(), pb = make();
    auto fa = htga::estimators::bind_flat_gradients(pa), fb = htga::estimators::bind_flat_gradients(pb);
    AlphaSettings graphed, eager;
    graphed.scope = eager.scope = htga::experiments::scope_named(scope);
    eager.graph = false;
    AlphaMonitor mg(graphed, pa, fa, 0), me(eager, pb, fb, 0);
    for (int64_t step = 0; step < 8; ++step) {
      auto g = htga::test::pareto(1.6, fa.numel(), 2000 + step).to(torch::kFloat32).to(cuda);
      fa.copy_(g);
      fb.copy_(g);
      auto rg = mg.observe(step), re = me.observe(step);
      if (step == 0) continue;
      CHECK(torch::equal(rg.alpha.cpu(), re.alpha.cpu()));
      if (scope == "layer") CHECK(torch::equal(rg.layers.cpu(), re.layers.cpu()));
    }
    CHECK(mg.graph_failure() == "");
    CHECK(mg.graphed());  // captured after two eager estimates
    CHECK_FALSE(me.graphed());
    // Replacing the mean (a checkpoint) makes it recapture rather than read a stale buffer.
    auto state = mg.state().clone();
    mg.load_state(state);
    me.load_state(state);
    fa.copy_(htga::test::pareto(1.6, fa.numel(), 9).to(torch::kFloat32).to(cuda));
    fb.copy_(fa);
    CHECK(torch::equal(mg.observe(9).alpha.cpu(), me.observe(9).alpha.cpu()));
  }
}

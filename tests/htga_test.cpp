#include "optimizers/htga.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "optimizers/sgd.h"

using htga::optimizers::HtgaController;
using htga::optimizers::HtgaOptions;

namespace {
const float kNaN = std::numeric_limits<float>::quiet_NaN();
double rate(HtgaController& c, float alpha, int64_t step) {
  return c.update(torch::tensor(alpha), step).item<double>();
}

HtgaOptions plain(double lr) {
  HtgaOptions o(lr);
  o.alpha_ema = 0;  // no smoothing: the rule on the raw estimate
  o.warmup_steps = 0;
  return o;
}
}  // namespace

TEST_CASE("the HTGA rule: eta0 * (alpha_hat / alpha0)^beta", "[optimizers]") {
  HtgaOptions o = plain(0.1);
  o.alpha0 = 1.5;
  o.beta = 1.0;
  HtgaController c(o, torch::kCPU);
  CHECK(rate(c, 3.0f, 0) == Approx(0.2));    // lighter tails than the target: faster
  CHECK(rate(c, 0.75f, 1) == Approx(0.05));  // heavier tails: slower
  CHECK(rate(c, 1.5f, 2) == Approx(0.1));

  o.beta = 2.0;
  HtgaController squared(o, torch::kCPU);
  CHECK(rate(squared, 3.0f, 0) == Approx(0.4));
}

TEST_CASE("the rate is clamped to [lr_min, lr_max]", "[optimizers]") {
  HtgaController c(plain(0.1), torch::kCPU);  // defaults: [0.01, 1.0]
  CHECK(rate(c, 30.0f, 0) == Approx(1.0));
  CHECK(rate(c, 0.01f, 1) == Approx(0.01));
  HtgaOptions o = plain(0.1);
  o.lr_min = 0.05;
  o.lr_max = 0.15;
  HtgaController narrow(o, torch::kCPU);
  CHECK(rate(narrow, 3.0f, 0) == Approx(0.15));
  CHECK(rate(narrow, 0.3f, 1) == Approx(0.05));
}

TEST_CASE("eta0 before the first estimate and during warmup", "[optimizers]") {
  HtgaOptions o(0.1);
  o.alpha_ema = 0;
  o.warmup_steps = 3;
  HtgaController c(o, torch::kCPU);
  CHECK(rate(c, kNaN, 0) == Approx(0.1));
  CHECK(rate(c, 3.0f, 1) == Approx(0.1));  // in warmup, but the estimate is kept
  CHECK(rate(c, kNaN, 3) == Approx(0.2));  // no new estimate: the last one holds
  CHECK(c.smoothed_alpha().item<double>() == Approx(3.0));
}

TEST_CASE("alpha_hat is smoothed by an EMA", "[optimizers]") {
  HtgaOptions o = plain(0.1);
  o.alpha_ema = 0.5;
  HtgaController c(o, torch::kCPU);
  rate(c, 2.0f, 0);  // the first estimate starts the average
  CHECK(c.smoothed_alpha().item<double>() == Approx(2.0));
  CHECK(rate(c, 1.0f, 1) == Approx(0.1 * 1.5 / 1.5));  // a = 0.5 * 2 + 0.5 * 1 = 1.5
  rate(c, kNaN, 2);
  CHECK(c.smoothed_alpha().item<double>() == Approx(1.5));
}

TEST_CASE("beta = 0 gives exactly eta0", "[optimizers]") {
  HtgaOptions o = plain(0.05);
  o.beta = 0;
  HtgaController c(o, torch::kCPU);
  const float eta0 = 0.05f;
  CHECK(c.update(torch::tensor(0.7f), 0).item<float>() == eta0);
  CHECK(c.update(torch::tensor(2.9f), 1).item<float>() == eta0);
}

TEST_CASE("invalid HTGA options are refused", "[optimizers]") {
  CHECK_THROWS_AS(HtgaController(HtgaOptions(0.0), torch::kCPU), std::invalid_argument);
  HtgaOptions o(0.1);
  o.lr_min = 0.5;
  o.lr_max = 0.2;
  CHECK_THROWS_AS(HtgaController(o, torch::kCPU), std::invalid_argument);
}

TEST_CASE("max_lr_change limits the rate's step-to-step factor", "[optimizers]") {
  HtgaOptions o = plain(0.1);
  o.max_lr_change = 1.5;
  HtgaController c(o, torch::kCPU);
  CHECK(rate(c, 6.0f, 0) == Approx(0.15));   // the rule says 0.4; 0.1 * 1.5 at most
  CHECK(rate(c, 6.0f, 1) == Approx(0.225));  // 0.15 * 1.5
  CHECK(rate(c, 0.3f, 2) == Approx(0.15));   // the rule says 0.02; 0.225 / 1.5 at least
}

TEST_CASE("a plateau switches the target to alpha0_explore until the loss improves", "[optimizers]") {
  HtgaOptions o = plain(0.1);
  o.alpha0 = 2.0;
  o.alpha0_explore = 1.0;  // heavier-tailed target: at alpha_hat 2 the rule doubles the rate
  o.plateau_patience = 3;
  o.plateau_tol = 0.01;
  o.loss_ema = 0;  // the raw loss
  HtgaController c(o, torch::kCPU);
  auto step = [&](float loss, int64_t t) {
    return c.update(torch::tensor(2.0f), t, torch::tensor(loss)).item<double>();
  };
  CHECK(step(1.0f, 0) == Approx(0.1));  // first loss: the window's best
  CHECK(step(1.0f, 1) == Approx(0.1));
  CHECK(step(1.0f, 2) == Approx(0.1));
  CHECK(step(1.0f, 3) == Approx(0.2));  // 3 steps without a 1% improvement: explore
  CHECK(c.phase().item<float>() == 1.0f);
  CHECK(step(0.995f, 4) == Approx(0.2));  // 0.5% better: still a plateau
  CHECK(step(0.9f, 5) == Approx(0.1));    // 10% better: back to alpha0
  CHECK(c.phase().item<float>() == 0.0f);
}

TEST_CASE("the target anneals to alpha0_final over the last part of training", "[optimizers]") {
  HtgaOptions o = plain(0.1);
  o.alpha0 = 2.0;
  o.alpha0_final = 4.0;
  o.final_fraction = 0.5;
  o.total_steps = 100;
  HtgaController c(o, torch::kCPU);
  CHECK(rate(c, 2.0f, 10) == Approx(0.1));
  CHECK(c.phase().item<float>() == 0.0f);
  CHECK(rate(c, 2.0f, 50) == Approx(0.1));  // the final phase starts at target 2.0
  CHECK(c.phase().item<float>() == 2.0f);
  CHECK(rate(c, 2.0f, 75) == Approx(0.1 * 2.0 / 3.0));  // target 3.0 halfway
  CHECK(rate(c, 2.0f, 100) == Approx(0.05));            // target 4.0
}

TEST_CASE("layer scope: one rate per group, each by the same rule", "[optimizers]") {
  HtgaController c(plain(0.1), torch::kCPU, /*groups=*/3);
  auto lr = c.update(torch::tensor({3.0f, 1.5f, NAN}), 0);
  REQUIRE(lr.numel() == 3);
  CHECK(lr[0].item<double>() == Approx(0.2));
  CHECK(lr[1].item<double>() == Approx(0.1));
  CHECK(lr[2].item<double>() == Approx(0.1));  // no estimate yet for this group: eta0
  // The base optimizer applies each group's rate to its parameter tensor.
  auto a = torch::ones({2}).requires_grad_(), b = torch::ones({1}).requires_grad_();
  a.mutable_grad() = torch::ones({2});
  b.mutable_grad() = torch::ones({1});
  htga::optimizers::Sgd sgd({a, b});
  sgd.step(torch::tensor({0.2f, 0.5f}));
  CHECK(a.allclose(torch::full({2}, 0.8f)));
  CHECK(b.allclose(torch::full({1}, 0.5f)));
}

TEST_CASE("alpha_hat equal to alpha0 gives exactly the base rate", "[optimizers]") {
  HtgaOptions o = plain(0.05);
  o.alpha0 = 1.7f;  // representable the same way as the estimate below
  HtgaController c(o, torch::kCPU);
  for (int64_t t = 0; t < 5; ++t) CHECK(c.update(torch::tensor(1.7f), t).item<float>() == 0.05f);
}

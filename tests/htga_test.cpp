#include "optimizers/htga.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

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

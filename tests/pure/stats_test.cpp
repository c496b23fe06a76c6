#include "experiments/analysis/stats.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <vector>

using namespace htga::stats;

// Reference values: published t tables, and scipy 1.10 (scipy.stats.t, beta, ttest_rel,
// ttest_ind(equal_var=False), wilcoxon) where noted.

TEST_CASE("mean, sample standard deviation and median", "[stats]") {
  CHECK(mean({1, 2, 3, 4}) == Approx(2.5));
  CHECK(sample_sd({2, 4, 4, 4, 5, 5, 7, 9}) == Approx(std::sqrt(32.0 / 7)));  // n - 1 divisor
  CHECK(std::isnan(mean({})));
  CHECK(std::isnan(sample_sd({1})));
  CHECK(median({3, 1, 2}) == 2);
  CHECK(median({4, 1, 3, 2}) == 2.5);
  CHECK(std::isnan(median({})));
}

TEST_CASE("incomplete beta and the t distribution", "[stats]") {
  CHECK(incomplete_beta(2.5, 4.0, 0.3) == Approx(0.3521975859067672).epsilon(1e-10));  // scipy beta.cdf
  CHECK(incomplete_beta(0.5, 0.5, 0.9) == Approx(0.7951672353008665).epsilon(1e-10));  // arcsine law
  CHECK(incomplete_beta(1, 1, 0.37) == Approx(0.37).epsilon(1e-12));                   // uniform
  CHECK(t_cdf(0, 5) == Approx(0.5));
  CHECK(t_cdf(-1.5, 3) == Approx(0.11529193262241141).epsilon(1e-10));
  CHECK(t_cdf(2.0, 7.5) == Approx(0.9585515023509169).epsilon(1e-10));  // fractional df
  CHECK(t_cdf(1.0, 1) == Approx(0.75).epsilon(1e-12));                  // Cauchy: 1/2 + atan(1)/pi
  CHECK(t_two_sided_p(4.242640687119285, 4) == Approx(0.013235599563682695).epsilon(1e-9));
}

TEST_CASE("t quantiles match the published table to 1e-6", "[stats]") {
  // Two-sided 95% critical values (one-sided 0.975) from any t table.
  CHECK(t_quantile(0.975, 1) == Approx(12.706205).margin(1e-6));
  CHECK(t_quantile(0.975, 2) == Approx(4.302653).margin(1e-6));
  CHECK(t_quantile(0.975, 4) == Approx(2.776445).margin(1e-6));
  CHECK(t_quantile(0.975, 10) == Approx(2.228139).margin(1e-6));
  CHECK(t_quantile(0.975, 30) == Approx(2.042272).margin(1e-6));
  CHECK(t_quantile(0.995, 10) == Approx(3.169273).margin(1e-6));
  CHECK(t_quantile(0.975, 1000) == Approx(1.962339).margin(1e-6));
  CHECK(t_quantile(0.975, 2.5) == Approx(3.5746548420118773).margin(1e-6));  // scipy, fractional df
  CHECK(t_quantile(0.9999, 2) == Approx(70.70007107496886).margin(1e-6));
  CHECK(t_quantile(0.025, 4) == Approx(-2.776445).margin(1e-6));  // symmetric
  CHECK(t_quantile(0.5, 7) == 0);
  CHECK(std::isnan(t_quantile(1.0, 4)));
  CHECK(std::isnan(t_quantile(0.9, 0)));
}

TEST_CASE("a 95% confidence interval of a mean, by hand", "[stats]") {
  // x = 0.80..0.84: mean 0.82, sd = sqrt(0.001/4) = 0.0158114, half width 2.776445 sd / sqrt(5).
  const auto m = mean_interval({0.80, 0.81, 0.82, 0.83, 0.84});
  CHECK(m.n == 5);
  CHECK(m.mean == Approx(0.82));
  CHECK(m.sd == Approx(0.015811388300841858));
  CHECK(m.low == Approx(0.8003675683852245).epsilon(1e-9));
  CHECK(m.high == Approx(0.8396324316147756).epsilon(1e-9));
  const auto one = mean_interval({0.5});
  CHECK(one.mean == 0.5);
  CHECK(std::isnan(one.low));
}

TEST_CASE("paired and Welch t-tests", "[stats]") {
  // Differences 0.01..0.05: mean 0.03, sd 0.0158114, t = 0.03 / (sd / sqrt 5) = 4.2426, df 4.
  const auto t = paired_t({0.81, 0.83, 0.85, 0.87, 0.89}, {0.80, 0.81, 0.82, 0.83, 0.84});
  CHECK(t.n == 5);
  CHECK(t.estimate == Approx(0.03));
  CHECK(t.t == Approx(4.242640687119278).epsilon(1e-9));
  CHECK(t.df == 4);
  CHECK(t.p == Approx(0.013235599563682768).epsilon(1e-8));  // scipy ttest_rel
  CHECK(t.low == Approx(0.03 - 2.7764451051977987 * 0.015811388300841858 / std::sqrt(5.0)).epsilon(1e-9));
  CHECK(t.high == Approx(0.03 + 2.7764451051977987 * 0.015811388300841858 / std::sqrt(5.0)).epsilon(1e-9));

  const auto w = welch_t({1, 2, 3, 4}, {2, 4, 6, 8, 10, 12});  // scipy ttest_ind(equal_var=False)
  CHECK(w.estimate == Approx(-4.5));
  CHECK(w.t == Approx(-2.713602101199873).epsilon(1e-9));
  CHECK(w.df == Approx(6.59467097295115).epsilon(1e-9));
  CHECK(w.p == Approx(0.03182444378084147).epsilon(1e-8));
  CHECK(w.low == Approx(-8.470676786681151).epsilon(1e-8));
  CHECK(w.high == Approx(-0.5293232133188481).epsilon(1e-8));

  CHECK(std::isnan(paired_t({1}, {2}).p));         // one pair: undefined
  CHECK(std::isnan(one_sample_t({0, 0, 0}).p));    // all equal to zero: undefined
  CHECK(one_sample_t({0.5, 0.5, 0.5}).p == 0);     // identical non-zero differences
  CHECK(one_sample_t({0.1, 0.1, 0.1}).p < 1e-10);  // the same up to rounding
  CHECK(std::isnan(welch_t({1}, {2, 3}).p));
  CHECK_THROWS(paired_t({1, 2}, {1}));
}

TEST_CASE("Wilcoxon signed-rank: exact p-values for small n", "[stats]") {
  // All n differences positive: p = 2 / 2^n (the tables' smallest attainable values).
  auto w5 = wilcoxon_signed_rank({1, 2, 3, 4, 5});
  CHECK(w5.exact);
  CHECK(w5.n == 5);
  CHECK(w5.w_plus == 15);
  CHECK(w5.p == Approx(0.0625).epsilon(1e-12));
  CHECK(wilcoxon_signed_rank({1, 2, 3, 4, 5, 6}).p == Approx(0.03125).epsilon(1e-12));
  CHECK(wilcoxon_signed_rank({-0.1, -0.2, -0.3, -0.4, -0.5, -0.6}).p == Approx(0.03125).epsilon(1e-12));
  // W- = 2 + 7 = 9 of n = 8: P(W <= 9) = 32/256, two-sided 0.25 (scipy exact).
  auto w8 = wilcoxon_signed_rank({1, -2, 3, 4, 5, 6, -7, 8});
  CHECK(w8.w_plus == 27);
  CHECK(w8.p == Approx(0.25).epsilon(1e-12));
  // n = 25, every third negative: scipy exact 0.14847958087921143.
  std::vector<double> d25;
  for (int i = 1; i <= 25; ++i) d25.push_back(i % 3 == 0 ? -i : i);
  auto w25 = wilcoxon_signed_rank(d25);
  CHECK(w25.exact);
  CHECK(w25.p == Approx(0.14847958087921143).epsilon(1e-10));
  // Zero differences are dropped (Wilcoxon's method): the same as n = 5 all positive.
  auto wz = wilcoxon_signed_rank({1, 0, 2, 3, 0, 4, 5});
  CHECK(wz.n == 5);
  CHECK(wz.p == Approx(0.0625));
  CHECK(std::isnan(wilcoxon_signed_rank({0, 0}).p));
}

TEST_CASE("Wilcoxon signed-rank: normal approximation for ties and large n", "[stats]") {
  // Ties: mid-ranks and the tie-corrected variance; scipy wilcoxon(method="approx",
  // correction=True) gives 0.44008561562545456.
  auto wt = wilcoxon_signed_rank({1, 2, 2, -3, 4, 4, 5, -6});
  CHECK_FALSE(wt.exact);
  CHECK(wt.w_plus == 24);
  CHECK(wt.p == Approx(0.44008561562545456).epsilon(1e-9));
  // n = 30 > 25: normal approximation with continuity correction, scipy 0.013579415038448943.
  std::vector<double> d30;
  for (int i = 1; i <= 30; ++i) d30.push_back(i % 4 == 0 ? -i : i);
  auto w30 = wilcoxon_signed_rank(d30);
  CHECK_FALSE(w30.exact);
  CHECK(w30.p == Approx(0.013579415038448943).epsilon(1e-9));
}

TEST_CASE("Holm and Benjamini-Hochberg adjustments match R's p.adjust", "[stats]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm") and "BH"; NaN is not a test.
  const std::vector<double> p{0.01, 0.04, nan, 0.03, 0.005};
  const auto h = htga::stats::holm(p);
  const auto b = htga::stats::benjamini_hochberg(p);
  const std::vector<double> holm{0.03, 0.06, nan, 0.06, 0.02}, bh{0.02, 0.04, nan, 0.04, 0.02};
  REQUIRE(h.size() == p.size());
  for (size_t i = 0; i < p.size(); ++i) {
    INFO("i " << i);
    if (std::isnan(p[i])) {
      CHECK(std::isnan(h[i]));
      CHECK(std::isnan(b[i]));
      continue;
    }
    CHECK(h[i] == Approx(holm[i]));
    CHECK(b[i] == Approx(bh[i]));
  }
  CHECK(htga::stats::holm({0.6, 0.7})[0] == 1.0);  // capped at 1
  CHECK(htga::stats::holm({}).empty());
  CHECK(htga::stats::benjamini_hochberg({0.2})[0] == Approx(0.2));  // one test: unchanged
}

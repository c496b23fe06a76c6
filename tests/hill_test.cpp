#include "estimators/hill.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <tuple>

#include "estimators/noise.h"
#include "samplers.h"

using htga::estimators::hill;
using htga::test::pareto;

namespace {

/// The formula written out directly, in double precision on a full sort.
double hill_reference(const torch::Tensor& x, int64_t k) {
  auto t = x.abs().to(torch::kFloat64).contiguous();
  std::vector<double> v(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
  std::sort(v.begin(), v.end(), std::greater<double>());
  double s = 0;
  for (int64_t i = 0; i < k; ++i) s += std::log(v[i] / v[k]);
  return static_cast<double>(k) / s;
}

}  // namespace

TEST_CASE("default k is floor(sqrt(n))", "[estimators]") {
  CHECK(htga::estimators::hill_default_k(1000000) == 1000);
  CHECK(htga::estimators::hill_default_k(999999) == 999);
  CHECK(htga::estimators::hill_default_k(10) == 3);
}

TEST_CASE("Hill recovers the tail index of Pareto samples", "[estimators]") {
  const int64_t n = 1000000;  // k = 1000, standard error alpha / sqrt(k) ~ 3.2%
  for (double alpha : {0.8, 1.5, 3.0}) {
    auto x = pareto(alpha, n, /*seed=*/42);
    const double est = hill(x).item<double>();
    INFO("alpha = " << alpha << ", estimate = " << est);
    CHECK(std::abs(est - alpha) / alpha < 0.1);
    CHECK(est == Approx(hill_reference(x, 1000)).epsilon(1e-3));
    CHECK(hill(x.to(torch::kFloat32)).item<double>() == Approx(est).epsilon(1e-3));
  }
}

TEST_CASE("the CPU threshold path and the topk path agree", "[estimators]") {
  for (int64_t n : {5, 100, 10000, 300000}) {
    auto x = pareto(1.3, n, static_cast<uint64_t>(n)).to(torch::kFloat32);
    for (int64_t k : {int64_t{0}, int64_t{1}, n / 3, n - 1}) {
      INFO("n " << n << " k " << k);
      CHECK(hill(x, k).item<double>() == Approx(htga::estimators::hill_topk(x, k).item<double>()).epsilon(1e-5));
    }
  }
  // Many ties at the threshold, and a sample that misjudges the tail (all mass in a few values).
  auto ties = torch::cat({torch::full({1000}, 1.0f), torch::full({10}, 5.0f), torch::full({5}, 9.0f)});
  CHECK(hill(ties, 12).item<double>() == Approx(htga::estimators::hill_topk(ties, 12).item<double>()).epsilon(1e-6));
  auto spike = torch::zeros({100000});
  spike.narrow(0, 50000, 400).copy_(pareto(2.0, 400, 9).to(torch::kFloat32));
  CHECK(hill(spike, 300).item<double>() ==
        Approx(htga::estimators::hill_topk(spike, 300).item<double>()).epsilon(1e-5));
}

TEST_CASE("the fused noise form equals Hill on g_t - m_{t-1}", "[estimators]") {
  htga::estimators::EmaNoise a(0.8), b(0.8);
  torch::Tensor last;
  for (uint64_t t = 0; t < 4; ++t) {
    auto g = pareto(1.7, 50000, 100 + t).to(torch::kFloat32);
    auto noise = a.observe_flat(g);
    const bool ready = b.update(g);
    CHECK(ready == noise.defined());
    if (!ready) continue;
    // g - m_t = rho (g - m_{t-1}), and Hill does not see the scale.
    CHECK(htga::estimators::hill_of_difference(g, b.mean()).item<double>() ==
          Approx(hill(noise).item<double>()).epsilon(1e-4));
    CHECK((g - b.mean()).allclose(noise * 0.8, 1e-4, 1e-5));
  }
}

TEST_CASE("the one-pass EMA noise Hill equals Hill on g - m, and updates m like lerp", "[estimators]") {
  for (int64_t n : {40, 5000, 235146}) {
    auto g = pareto(1.4, n, 50 + n).to(torch::kFloat32);
    auto m = pareto(1.4, n, 60 + n).to(torch::kFloat32) * 0.5;
    auto expected = hill(g - m).item<double>();
    auto lerped = m.lerp(g, 0.1);
    auto alpha = htga::estimators::hill_ema_noise(g, m, /*rho=*/0.9).item<double>();
    INFO("n " << n);
    CHECK(alpha == Approx(expected).epsilon(1e-5));
    CHECK(m.allclose(lerped, 1e-6, 1e-6));
  }
  // Mostly exact zeros in the noise (dead units): defined while k + 1 values are nonzero.
  auto g = torch::zeros({100000});
  auto m = torch::zeros({100000});
  g.narrow(0, 0, 2000).copy_(pareto(2.0, 2000, 5).to(torch::kFloat32));
  auto expected = hill(g.clone()).item<double>();
  CHECK(htga::estimators::hill_ema_noise(g, m, 0.9).item<double>() == Approx(expected).epsilon(1e-5));
  auto few = torch::zeros({100000});
  few.narrow(0, 0, 100).fill_(3.0f);
  auto m2 = torch::zeros({100000});
  CHECK(std::isnan(htga::estimators::hill_ema_noise(few, m2, 0.9).item<float>()));
  auto with_nan = pareto(1.5, 10000, 3).to(torch::kFloat32);
  with_nan[777] = std::numeric_limits<float>::quiet_NaN();
  auto m3 = torch::zeros({10000});
  CHECK(std::isnan(htga::estimators::hill_ema_noise(with_nan, m3, 0.9).item<float>()));
}

TEST_CASE("the fused pass: any thread count, the same estimate, mean and norm; a misjudged sample", "[estimators]") {
  const int64_t n = 235146;  // the quick-start MLP's parameters: 15 blocks of the pass
  auto run = [](const torch::Tensor& g, const torch::Tensor& m0, int threads) {
    const int saved = at::get_num_threads();
    at::set_num_threads(threads);
    auto m = m0.clone();
    htga::estimators::EmaHillExtras extras;
    const float a = htga::estimators::hill_ema_noise(g, m, 0.9, 0, &extras).item<float>();
    at::set_num_threads(saved);
    REQUIRE(extras.has_sumsq);
    CHECK(extras.sumsq == Approx(g.to(torch::kFloat64).pow(2).sum().item<double>()).epsilon(1e-6));
    return std::make_tuple(a, m, extras.sumsq);
  };
  auto g = pareto(1.6, n, 11).to(torch::kFloat32);
  auto m0 = pareto(1.6, n, 12).to(torch::kFloat32) * 0.3;
  // A gradient whose large values sit exactly where the strided sample looks: the sample's
  // threshold lets through too few, and the wider one too, so both extra passes run.
  auto tricky = torch::randn({n}) * 1e-3;
  tricky.index_put_({torch::arange(0, n, n / 4096)},
                    pareto(1.3, (n + n / 4096 - 1) / (n / 4096), 5).to(torch::kFloat32));
  for (const auto& [grad, mean] : {std::make_pair(g, m0), std::make_pair(tricky, torch::zeros({n}))}) {
    const auto [a1, m1, s1] = run(grad, mean, 1);
    CHECK(a1 == Approx(hill(grad - mean).item<double>()).epsilon(1e-5));
    CHECK(m1.allclose(mean.lerp(grad, 0.1), 1e-6, 1e-7));
    const auto [a4, m4, s4] = run(grad, mean, 4);  // blocks shared by 4 threads: bit for bit the same
    CHECK(a4 == a1);
    CHECK(torch::equal(m4, m1));
    CHECK(s4 == s1);
  }
}

TEST_CASE("the fused pass: the portable loop and the AVX2 one give the same bits, on any threads", "[estimators]") {
  using htga::estimators::hill_ema_noise;
  struct Out {
    float alpha;
    torch::Tensor mean;
    double sumsq;
  };
  auto run = [](const torch::Tensor& g, const torch::Tensor& m0, bool portable, int threads) {
    const int saved = at::get_num_threads();
    at::set_num_threads(threads);
    htga::estimators::detail::use_portable_pass(portable);
    auto m = m0.clone();
    htga::estimators::EmaHillExtras extras;
    const float a = hill_ema_noise(g, m, 0.9, 0, &extras).item<float>();
    htga::estimators::detail::use_portable_pass(false);
    at::set_num_threads(saved);
    return Out{a, m, extras.sumsq};
  };
  auto same_bits = [](float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; };
  // Lengths: whole 64s, a remainder, several blocks of 16384 with a remainder, the MLP's.
  for (int64_t n : {int64_t{4096}, int64_t{5003}, int64_t{3 * 16384 + 777}, int64_t{235146}}) {
    auto g = pareto(1.3, n, 70 + n).to(torch::kFloat32);
    g.narrow(0, 0, n / 3).neg_();
    g.narrow(0, n / 2, n / 10).zero_();  // dead units
    auto m0 = pareto(1.3, n, 80 + n).to(torch::kFloat32) * 0.2;
    const Out ref = run(g, m0, true, 1);
    for (const auto& [portable, threads] : {std::pair{false, 1}, std::pair{false, 2}, std::pair{true, 2}}) {
      INFO("n " << n << " portable " << portable << " threads " << threads);
      const Out o = run(g, m0, portable, threads);
      CHECK(same_bits(o.alpha, ref.alpha));
      CHECK(std::memcmp(o.mean.data_ptr<float>(), ref.mean.data_ptr<float>(), sizeof(float) * n) == 0);
      CHECK(o.sumsq == ref.sumsq);
    }
    CHECK(ref.alpha == Approx(hill(g - m0).item<double>()).epsilon(1e-5));
  }
}

TEST_CASE("slices share one pass: bit for bit each slice on its own, on any threads; nan_median", "[estimators]") {
  using htga::estimators::hill_ema_noise;
  using htga::estimators::hill_ema_noise_slices;
  // The MLP's tensors (a weight, its bias, ...), a tiny one (read whole), one with a NaN,
  // one of dead units (too few nonzeros), one made to fool the sample (a second pass runs).
  const std::vector<int64_t> lengths{200704, 256, 32768, 128, 10, 5000, 7000, 20000, 1280};
  std::vector<std::pair<int64_t, int64_t>> slices;
  int64_t n = 0;
  for (int64_t len : lengths) {
    slices.push_back({n, len});
    n += len;
  }
  auto g = pareto(1.4, n, 31).to(torch::kFloat32);
  g.narrow(0, 0, n / 3).neg_();
  g[slices[5].first + 17] = std::numeric_limits<float>::quiet_NaN();
  g.narrow(0, slices[6].first, slices[6].second - 40).zero_();
  auto tricky = g.narrow(0, slices[7].first, slices[7].second);
  tricky.copy_(torch::randn({slices[7].second}) * 1e-3);
  const int64_t stride = slices[7].second / 256;
  for (int64_t r = 0; r < 256; ++r) tricky.narrow(0, r * stride, 16).fill_(10.0f + r);
  const auto m0 = pareto(1.4, n, 32).to(torch::kFloat32) * 0.2;
  m0.narrow(0, slices[6].first, slices[6].second).zero_();
  const std::vector<int64_t> ks{0, 0, 0, 0, 0, 0, 0, 0, 50};

  // With the NaN (slice 5 undefined, the sum of squares NaN) and without it.
  for (const bool with_nan : {true, false}) {
    INFO("with NaN " << with_nan);
    const auto grad = with_nan ? g : g.nan_to_num(0.0);
    auto m_ref = m0.clone();
    std::vector<float> ref;
    double sumsq = 0;
    for (size_t i = 0; i < slices.size(); ++i) {
      auto mi = m_ref.narrow(0, slices[i].first, slices[i].second);
      htga::estimators::EmaHillExtras extras;
      auto gi = grad.narrow(0, slices[i].first, slices[i].second);
      ref.push_back(hill_ema_noise(gi, mi, 0.9, ks[i], &extras).item<float>());
      double s = 0;
      const float* p = gi.data_ptr<float>();
      for (int64_t j = 0; j < gi.numel(); ++j) s += static_cast<double>(p[j]) * p[j];
      if (extras.has_sumsq) s = extras.sumsq;  // the pass's sum (in lanes of 64): another order
      sumsq += s;
    }
    CHECK(std::isnan(ref[5]) == with_nan);
    CHECK(std::isnan(ref[6]));
    CHECK_FALSE(std::isnan(ref[7]));
    CHECK(std::isnan(sumsq) == with_nan);
    for (int threads : {1, 2, 3}) {
      INFO("threads " << threads);
      const int saved = at::get_num_threads();
      at::set_num_threads(threads);
      auto m = m0.clone();
      const auto got = hill_ema_noise_slices(grad, m, 0.9, slices, ks);
      at::set_num_threads(saved);
      REQUIRE(got.alpha.size() == ref.size());
      CHECK(std::memcmp(got.alpha.data(), ref.data(), sizeof(float) * ref.size()) == 0);
      CHECK(std::memcmp(m.data_ptr<float>(), m_ref.data_ptr<float>(), sizeof(float) * n) == 0);  // NaN too
      // Every slice sums g^2 (the tiny one too): the slices' sums in slice order.
      REQUIRE(got.has_sumsq);
      CHECK(std::memcmp(&got.sumsq, &sumsq, sizeof sumsq) == 0);
    }
  }
  // A float64 slice takes the tensor path, which does not sum g^2.
  auto g64 = g.to(torch::kFloat64);
  auto m64 = m0.to(torch::kFloat64);
  CHECK_FALSE(hill_ema_noise_slices(g64, m64, 0.9, slices, ks).has_sumsq);
  auto m = m0.clone();
  CHECK_THROWS(hill_ema_noise_slices(g, m, 0.9, slices, {0, 0}));  // a k for every slice

  // A vector too small for the pass is read whole: what the tensor formulation gives, to rounding.
  for (int64_t len : {2, 3, 10, 64, 127}) {
    INFO("n " << len);
    const auto gs = pareto(1.5, len, 90 + len).to(torch::kFloat32);
    const auto ms0 = pareto(1.5, len, 190 + len).to(torch::kFloat32) * 0.3;
    auto ms = ms0.clone();
    htga::estimators::EmaHillExtras extras;
    const float a = hill_ema_noise(gs, ms, 0.9, 0, &extras).item<float>();
    const float want = htga::estimators::hill(gs - ms0).item<float>();
    if (std::isnan(want))
      CHECK(std::isnan(a));
    else
      CHECK(a == Approx(want).epsilon(1e-5));
    CHECK(ms.allclose(ms0.lerp(gs, 0.1), 1e-6, 1e-7));
    REQUIRE(extras.has_sumsq);
    CHECK(extras.sumsq == Approx(gs.to(torch::kFloat64).pow(2).sum().item<double>()).epsilon(1e-6));
  }
  auto one = torch::ones({1}), m1 = torch::zeros({1});
  CHECK(std::isnan(hill_ema_noise(one, m1, 0.9).item<float>()));  // k + 1 > n: undefined
  CHECK(m1.item<float>() == Approx(0.1f));
  CHECK_THROWS(hill_ema_noise_slices(g, m, 0.9, {{n - 5, 10}}, {0}));  // outside the vector

  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (const std::vector<float>& v : std::vector<std::vector<float>>{
           {3, 1, 2}, {4, 1, 3, 2}, {nan, 5, nan, 1}, {nan, nan}, {7}, {2, 2, nan, 1, 9, 9}}) {
    const float want = torch::tensor(v).nanmedian().item<float>();
    const float got = htga::estimators::nan_median(v);
    if (std::isnan(want))
      CHECK(std::isnan(got));
    else
      CHECK(got == want);
  }
}

TEST_CASE("the fused pass with ties at the order statistic and NaN where the sample looks", "[estimators]") {
  using htga::estimators::hill_ema_noise;
  using htga::estimators::hill_topk;
  // Gradients on a few levels (quantised values): long runs of equal magnitudes around X(k+1),
  // which the selection must step over rather than partition forever.
  const int64_t n = 100000;
  auto levels = torch::tensor({0.5f, 1.0f, 1.0f, 1.0f, 2.0f, 4.0f, 8.0f});
  auto g =
      levels.index_select(0, torch::randint(0, 7, {n}, torch::kInt64)) * (torch::rand({n}) > 0.5).to(torch::kFloat32);
  auto m = torch::zeros({n});
  for (int64_t k : {int64_t{0}, int64_t{50}, int64_t{5000}}) {
    auto mk = m.clone();
    INFO("k " << k);
    const float a = hill_ema_noise(g, mk, 0.9, k).item<float>();
    const float expected = hill_topk(g, k).item<float>();
    if (std::isnan(expected))
      CHECK(std::isnan(a));
    else
      CHECK(a == Approx(expected).epsilon(1e-5));
  }
  // A NaN as the first value that the sample reads: the estimate is undefined, never a crash.
  auto with_nan = pareto(1.5, n, 9).to(torch::kFloat32);
  with_nan[0] = std::numeric_limits<float>::quiet_NaN();
  auto m2 = torch::zeros({n});
  CHECK(std::isnan(hill_ema_noise(with_nan, m2, 0.9).item<float>()));
}

TEST_CASE("the sort-free radix Hill finds topk's order statistic on every input", "[estimators]") {
  using htga::estimators::hill_radix;
  using htga::estimators::hill_topk;
  auto same = [](const torch::Tensor& x, int64_t k) {
    const float r = hill_radix(x, k).item<float>(), t = hill_topk(x, k).item<float>();
    INFO("n " << x.numel() << " k " << k << " radix " << r << " topk " << t);
    if (std::isnan(t)) {
      CHECK(std::isnan(r));
    } else {
      CHECK(r == Approx(t).epsilon(2e-6));
    }
  };
  for (int64_t n : {2, 3, 50, 1000, 235146})
    for (double a : {0.8, 1.5, 3.0}) {
      auto x = pareto(a, n, 7 + n).to(torch::kFloat32);
      x.narrow(0, 0, n / 2).neg_();  // signs do not matter
      for (int64_t k : {int64_t{0}, int64_t{1}, n / 3, n - 1}) same(x, k);
    }
  // Values that share their high 16 bits (the second histogram decides), ties at X(k+1), zeros,
  // a zero X(k+1), subnormals, infinities, NaN, half precision.
  auto close = 1.0f + torch::arange(0, 5000, torch::kFloat32) * 1e-7f;
  same(close, 100);
  same(torch::cat({torch::full({300}, 2.5f), pareto(2.0, 3000, 3).to(torch::kFloat32)}), 50);
  same(torch::cat({torch::zeros({5000}), pareto(2.0, 40, 4).to(torch::kFloat32)}), 20);
  same(torch::cat({torch::zeros({5000}), pareto(2.0, 40, 4).to(torch::kFloat32)}), 100);
  same(pareto(1.2, 2000, 5).to(torch::kFloat32) * 1e-40f, 30);
  auto with_inf = pareto(1.5, 1000, 6).to(torch::kFloat32);
  with_inf[3] = std::numeric_limits<float>::infinity();
  same(with_inf, 30);
  auto with_nan = pareto(1.5, 1000, 8).to(torch::kFloat32);
  with_nan[5] = std::numeric_limits<float>::quiet_NaN();
  same(with_nan, 30);
  CHECK(std::isnan(hill_radix(with_nan, 30).item<float>()));
  auto half = pareto(1.5, 4000, 9).to(torch::kFloat16);
  same(half.to(torch::kFloat32), 60);
  CHECK(hill_radix(half, 60).item<float>() == Approx(hill_topk(half.to(torch::kFloat32), 60).item<float>()));
  same(torch::ones({10}), 3);  // all equal: undefined
}

TEST_CASE("Hill with an explicit k matches the reference formula", "[estimators]") {
  auto x = pareto(1.2, 5000, 3);
  for (int64_t k : {1, 10, 100, 4999}) CHECK(hill(x, k).item<double>() == Approx(hill_reference(x, k)).epsilon(1e-3));
}

TEST_CASE("Hill is NaN, not an exception, on degenerate input", "[estimators]") {
  CHECK(std::isnan(hill(torch::zeros({1000})).item<float>()));
  CHECK(std::isnan(hill(torch::full({1000}, 3.0)).item<float>()));
  CHECK(std::isnan(hill(torch::ones({1})).item<float>()));
  CHECK(std::isnan(hill(torch::ones({4}), 10).item<float>()));
  auto x = pareto(1.5, 1000, 1).to(torch::kFloat32);
  x[5] = std::numeric_limits<float>::quiet_NaN();
  CHECK(std::isnan(hill(x).item<float>()));
  x[5] = std::numeric_limits<float>::infinity();
  CHECK(std::isnan(hill(x).item<float>()));
  // Mostly zeros: X(k+1) = 0.
  auto sparse = torch::zeros({10000});
  sparse.narrow(0, 0, 50).fill_(1.5);
  CHECK(std::isnan(hill(sparse).item<float>()));
}

TEST_CASE("the EMA noise source returns g_t - m_{t-1}", "[estimators]") {
  htga::estimators::EmaNoise noise(0.5);
  auto a = torch::tensor({1.0f, 2.0f}), b = torch::tensor({3.0f});
  CHECK_FALSE(noise.observe({a, b}).defined());  // no mean yet
  auto n1 = noise.observe({torch::tensor({3.0f, 2.0f}), torch::tensor({1.0f})});
  CHECK(n1.allclose(torch::tensor({2.0f, 0.0f, -2.0f})));
  // m = 0.5 * (1, 2, 3) + 0.5 * (3, 2, 1) = (2, 2, 2)
  auto n2 = noise.observe({torch::tensor({2.0f, 4.0f}), torch::tensor({0.0f})});
  CHECK(n2.allclose(torch::tensor({0.0f, 2.0f, -2.0f})));
  CHECK(a.allclose(torch::tensor({1.0f, 2.0f})));  // inputs untouched
}

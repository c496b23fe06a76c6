#include "optimizers/clip.h"

#include <catch2/catch.hpp>
#include <limits>

#include "estimators/noise.h"
#include "optimizers/sgd.h"

using htga::optimizers::clip_grad_norm;

namespace {
torch::Tensor param_with_grad(std::vector<float> values, std::vector<float> grad) {
  auto p = torch::tensor(values).requires_grad_(true);
  p.mutable_grad() = torch::tensor(grad);
  return p;
}
}  // namespace

TEST_CASE("clipping matches clip_grad_norm_ on a hand-computed case", "[optimizers]") {
  // Gradients (3, 4) and (12): norms 5 and 12, global norm 13.
  auto a = param_with_grad({0, 0}, {3, 4});
  auto b = param_with_grad({0}, {12});
  auto r = clip_grad_norm({a, b}, /*max_norm=*/1.0);
  CHECK(r.total_norm.item<double>() == Approx(13.0));
  const double coef = 1.0 / (13.0 + 1e-6);
  CHECK(r.coef.item<double>() == Approx(coef).epsilon(1e-7));
  CHECK(a.grad()[0].item<double>() == Approx(3 * coef).epsilon(1e-6));
  CHECK(a.grad()[1].item<double>() == Approx(4 * coef).epsilon(1e-6));
  CHECK(b.grad()[0].item<double>() == Approx(12 * coef).epsilon(1e-6));
  // The clipped gradient's norm is just under max_norm, as with torch.nn.utils.clip_grad_norm_.
  CHECK(torch::cat({a.grad(), b.grad()}).norm().item<double>() == Approx(13.0 / (13.0 + 1e-6)).epsilon(1e-7));
}

TEST_CASE("gradients below the threshold are left alone", "[optimizers]") {
  auto a = param_with_grad({0, 0}, {3, 4});
  auto r = clip_grad_norm({a}, 100.0);
  CHECK(r.coef.item<double>() == 1.0);
  CHECK(a.grad().equal(torch::tensor({3.0f, 4.0f})));
  auto m = clip_grad_norm({a}, 0.0);  // measure only
  CHECK(m.total_norm.item<double>() == Approx(5.0));
  CHECK(a.grad().equal(torch::tensor({3.0f, 4.0f})));
}

TEST_CASE("SGD with a tensor rate takes w - lr * (g + wd * w)", "[optimizers]") {
  auto p = param_with_grad({1.0f, -2.0f}, {2.0f, 0.5f});
  htga::optimizers::Sgd sgd({p});
  sgd.step(torch::tensor(0.1f));
  CHECK(p.allclose(torch::tensor({0.8f, -2.05f})));

  auto q = param_with_grad({1.0f}, {2.0f});
  htga::optimizers::Sgd decayed({q}, {/*weight_decay=*/0.5});
  decayed.step(torch::tensor(0.1f));
  CHECK(q.item<float>() == Approx(1.0 - 0.1 * (2.0 + 0.5)));
  decayed.zero_grad();
  CHECK(q.grad().item<float>() == 0.0f);
}

TEST_CASE("value clipping clamps each element like clip_grad_value_", "[optimizers]") {
  auto a = param_with_grad({0, 0, 0}, {3, -0.2f, -7});
  htga::optimizers::clip_grad_value({a}, 0.5);
  CHECK(a.grad().equal(torch::tensor({0.5f, -0.2f, -0.5f})));
}

TEST_CASE("clipping the flat gradient buffer equals clipping each tensor", "[optimizers]") {
  torch::manual_seed(3);
  std::vector<torch::Tensor> params{torch::zeros({40, 30}, torch::requires_grad()),
                                    torch::zeros({30}, torch::requires_grad()),
                                    torch::zeros({10, 40}, torch::requires_grad())};
  auto flat = htga::estimators::bind_flat_gradients(params);
  flat.copy_(torch::randn({flat.numel()}) * 3);
  const auto g0 = flat.clone();
  // Per tensor, on copies.
  std::vector<torch::Tensor> copies;
  for (const auto& p : params) {
    auto c = torch::zeros_like(p).requires_grad_(true);
    c.mutable_grad() = p.grad().clone();
    copies.push_back(c);
  }
  auto per = clip_grad_norm(copies, 2.0);
  auto r = htga::optimizers::clip_flat_grad_norm(flat, 2.0);
  CHECK(r.total_norm.item<double>() == Approx(per.total_norm.item<double>()).epsilon(1e-6));
  CHECK(r.coef.item<double>() == Approx(per.coef.item<double>()).epsilon(1e-6));
  for (size_t i = 0; i < params.size(); ++i) CHECK(params[i].grad().allclose(copies[i].grad(), 1e-6, 1e-7));
  // With the sum of squares handed over (as the alpha_hat pass does): the same.
  flat.copy_(g0);
  auto given = htga::optimizers::clip_flat_grad_norm(flat, 2.0, g0.to(torch::kFloat64).pow(2).sum().item<double>());
  CHECK(given.total_norm.item<double>() == Approx(per.total_norm.item<double>()).epsilon(1e-6));
  CHECK(flat.allclose(torch::cat({copies[0].grad().reshape(-1), copies[1].grad(), copies[2].grad().reshape(-1)}), 1e-6,
                      1e-7));
  // Measure only.
  flat.copy_(g0);
  auto m = htga::optimizers::clip_flat_grad_norm(flat, 0.0);
  CHECK(m.coef.item<double>() == 1.0);
  CHECK(torch::equal(flat, g0));
  // Within the bound the gradient is left as it is (the multiplication by 1 is skipped), and
  // just past it, it is scaled; NaN and infinities stay what they were.
  flat.copy_(g0);
  const double norm = g0.norm().item<double>();
  auto within = htga::optimizers::clip_flat_grad_norm(flat, norm * 2);
  CHECK(within.coef.item<float>() == 1.0f);
  CHECK(torch::equal(flat, g0));
  auto past = htga::optimizers::clip_flat_grad_norm(flat, norm * 0.999);
  CHECK(past.coef.item<float>() < 1.0f);
  CHECK(torch::equal(flat, g0 * past.coef));
  flat.copy_(g0);
  flat[3] = std::numeric_limits<float>::quiet_NaN();
  auto with_nan = htga::optimizers::clip_flat_grad_norm(flat, 1.0);
  CHECK(std::isnan(with_nan.total_norm.item<float>()));
  CHECK(std::isnan(flat[3].item<float>()));
}

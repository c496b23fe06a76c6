#include "optimizers/clip.h"

#include <catch2/catch.hpp>

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

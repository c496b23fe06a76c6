#include <catch2/catch.hpp>
#include <cmath>

#include "estimators/noise.h"
#include "optimizers/sgd.h"

using namespace htga::optimizers;

namespace {

/// Runs `ours` and torch's `reference` side by side on copies of the same parameters with the
/// same gradients (a fixed function of the step), and returns the largest difference.
template <typename Ref>
double max_difference(Optimizer& ours, std::vector<torch::Tensor> mine, Ref& reference,
                      std::vector<torch::Tensor> theirs, double lr, int steps) {
  double worst = 0;
  for (int t = 0; t < steps; ++t) {
    for (size_t i = 0; i < mine.size(); ++i) {
      auto g = torch::sin(mine[i].detach() * (t + 1)) + 0.1 * (t % 3);
      mine[i].mutable_grad() = g.clone();
      theirs[i].mutable_grad() = torch::sin(theirs[i].detach() * (t + 1)) + 0.1 * (t % 3);
    }
    ours.step(torch::tensor(lr, torch::kFloat64));
    reference.step();
    for (size_t i = 0; i < mine.size(); ++i) worst = std::max(worst, (mine[i] - theirs[i]).abs().max().item<double>());
  }
  return worst;
}

std::vector<torch::Tensor> params_like(uint64_t seed) {
  torch::manual_seed(seed);
  return {torch::randn({5, 3}, torch::kFloat64).requires_grad_(), torch::randn({7}, torch::kFloat64).requires_grad_()};
}

std::vector<torch::Tensor> copies(const std::vector<torch::Tensor>& ps) {
  std::vector<torch::Tensor> out;
  for (const auto& p : ps) out.push_back(p.detach().clone().requires_grad_());
  return out;
}

}  // namespace

TEST_CASE("SGD, momentum and Nesterov match torch::optim::SGD step by step", "[optimizers]") {
  for (auto [momentum, nesterov, wd] : {std::tuple{0.0, false, 0.0}, std::tuple{0.9, false, 0.01},
                                        std::tuple{0.9, true, 0.0}, std::tuple{0.5, true, 0.1}}) {
    auto a = params_like(1);
    auto b = copies(a);
    Sgd ours(a, SgdOptions{wd, momentum, nesterov});
    torch::optim::SGD ref(b, torch::optim::SGDOptions(0.05).momentum(momentum).nesterov(nesterov).weight_decay(wd));
    INFO("momentum " << momentum << " nesterov " << nesterov << " wd " << wd);
    CHECK(max_difference(ours, a, ref, b, 0.05, 20) < 1e-12);
  }
}

TEST_CASE("Adam and AdamW match torch::optim step by step", "[optimizers]") {
  for (double wd : {0.0, 0.05}) {
    auto a = params_like(2);
    auto b = copies(a);
    AdamOptions o;
    o.weight_decay = wd;
    Adam ours(a, o);
    torch::optim::Adam ref(b, torch::optim::AdamOptions(0.01).weight_decay(wd));
    INFO("adam wd " << wd);
    CHECK(max_difference(ours, a, ref, b, 0.01, 20) < 1e-12);

    auto c = params_like(3);
    auto d = copies(c);
    o.decoupled = true;
    Adam ours_w(c, o);
    torch::optim::AdamW ref_w(d, torch::optim::AdamWOptions(0.01).weight_decay(wd));
    INFO("adamw wd " << wd);
    CHECK(max_difference(ours_w, c, ref_w, d, 0.01, 20) < 1e-12);
  }
}

TEST_CASE("each optimizer drives a convex quadratic and Rosenbrock to the optimum", "[optimizers]") {
  // f(x) = 0.5 x'Ax - b'x, A = diag(1, 10): optimum A^-1 b = (1, 0.2).
  auto run_quadratic = [](Optimizer& opt, torch::Tensor& x, double lr, int steps) {
    auto A = torch::tensor({1.0, 10.0}, torch::kFloat64), b = torch::tensor({1.0, 2.0}, torch::kFloat64);
    for (int i = 0; i < steps; ++i) {
      opt.zero_grad();
      auto f = 0.5 * (A * x * x).sum() - (b * x).sum();
      f.backward();
      opt.step(torch::tensor(lr, torch::kFloat64));
    }
  };
  // Rosenbrock (1 - x)^2 + 100 (y - x^2)^2: optimum (1, 1).
  auto run_rosenbrock = [](Optimizer& opt, torch::Tensor& x, double lr, int steps) {
    for (int i = 0; i < steps; ++i) {
      opt.zero_grad();
      auto f = (1 - x[0]).pow(2) + 100 * (x[1] - x[0].pow(2)).pow(2);
      f.backward();
      opt.step(torch::tensor(lr, torch::kFloat64));
    }
  };
  const auto optimum = torch::tensor({1.0, 0.2}, torch::kFloat64);
  const auto rosen = torch::tensor({1.0, 1.0}, torch::kFloat64);
  struct Case {
    const char* name;
    std::function<std::unique_ptr<Optimizer>(torch::Tensor)> make;
    double lr_q, lr_r;
    int steps_r;
  };
  const std::vector<Case> cases{
      {"sgd", [](torch::Tensor x) { return std::make_unique<Sgd>(std::vector<torch::Tensor>{x}); }, 0.1, 0.001, 60000},
      {"momentum",
       [](torch::Tensor x) {
         return std::make_unique<Sgd>(std::vector<torch::Tensor>{x}, SgdOptions{0, 0.9, false});
       },
       0.05, 0.0005, 20000},
      {"nesterov",
       [](torch::Tensor x) {
         return std::make_unique<Sgd>(std::vector<torch::Tensor>{x}, SgdOptions{0, 0.9, true});
       },
       0.05, 0.0005, 20000},
      {"adam", [](torch::Tensor x) { return std::make_unique<Adam>(std::vector<torch::Tensor>{x}); }, 0.05, 0.01,
       20000},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    auto x = torch::zeros({2}, torch::kFloat64).requires_grad_();
    auto opt = c.make(x);
    run_quadratic(*opt, x, c.lr_q, 3000);
    CHECK((x.detach() - optimum).abs().max().item<double>() < 1e-4);
    auto y = torch::tensor({-1.0, 1.0}, torch::kFloat64).requires_grad_();
    auto opt_r = c.make(y);
    run_rosenbrock(*opt_r, y, c.lr_r, c.steps_r);
    CHECK((y.detach() - rosen).abs().max().item<double>() < 1e-2);
  }
}

TEST_CASE("invalid optimizer options are refused", "[optimizers]") {
  auto x = torch::zeros({2}).requires_grad_();
  CHECK_THROWS_AS(Sgd({x}, SgdOptions{0, 0, /*nesterov=*/true}), std::invalid_argument);
  CHECK_THROWS_AS(Sgd({x}, SgdOptions{-1, 0, false}), std::invalid_argument);
  AdamOptions o;
  o.beta2 = 1.0;
  CHECK_THROWS_AS(Adam({x}, o), std::invalid_argument);
}

namespace {

/// Float32 parameters of three shapes (copies of one draw), optionally bound to flat buffers.
struct Params {
  std::vector<torch::Tensor> p;
  torch::Tensor flat_p, flat_g;
  explicit Params(bool flat) {
    torch::manual_seed(7);
    p = {torch::randn({6, 4}).requires_grad_(), torch::randn({4}).requires_grad_(),
         torch::randn({3, 2, 2}).requires_grad_()};
    if (!flat) return;
    flat_p = htga::estimators::bind_flat_parameters(p);
    flat_g = htga::estimators::bind_flat_gradients(p);
  }
  /// The gradient of step t, a fixed function of the weights, written into the bound gradients.
  void set_grads(int t) {
    torch::NoGradGuard no_grad;
    for (auto& q : p) {
      auto g = torch::sin(q.detach() * (t + 1)) + 0.1 * (t % 3);
      if (flat_g.defined())
        q.mutable_grad().copy_(g);
      else
        q.mutable_grad() = g;
    }
  }
};

std::unique_ptr<Optimizer> make(int kind, const std::vector<torch::Tensor>& p) {
  AdamOptions a;
  a.weight_decay = 0.05;
  switch (kind) {
    case 0:
      return std::make_unique<Sgd>(p);
    case 1:
      return std::make_unique<Sgd>(p, SgdOptions{0.01, 0.9, false});
    case 2:
      return std::make_unique<Sgd>(p, SgdOptions{0.0, 0.5, true});
    case 3:
      return std::make_unique<Adam>(p, a);
    default:
      a.decoupled = true;
      return std::make_unique<Adam>(p, a);
  }
}

double worst(const Params& a, const Params& b) {
  double w = 0;
  for (size_t i = 0; i < a.p.size(); ++i) w = std::max(w, (a.p[i] - b.p[i]).abs().max().item<double>());
  return w;
}

}  // namespace

TEST_CASE("flat updates equal the per-tensor ones step by step; their state round-trips", "[optimizers]") {
  const auto lr = torch::tensor(0.05f);
  for (int kind = 0; kind < 5; ++kind) {
    INFO("optimizer " << kind);
    Params per(false), flat(true);
    auto a = make(kind, per.p), b = make(kind, flat.p);
    b->use_flat(flat.flat_p, flat.flat_g);
    for (int t = 0; t < 6; ++t) {
      per.set_grads(t);
      flat.set_grads(t);
      a->step(lr);
      b->step(lr);
    }
    CHECK(worst(per, flat) < 1e-6);
    // The parameters are still views of the flat buffer, and the state reads as per tensor.
    CHECK(flat.p[0].data_ptr() == flat.flat_p.data_ptr());
    const auto saved = b->state();
    REQUIRE(saved.size() == a->state().size());
    // A fresh flat optimizer loads either's state and goes on like both.
    // A flat optimizer on a copy of the weights, loaded with `state`.
    auto fresh = [&](Params& q, const std::vector<torch::Tensor>& state) {
      {
        torch::NoGradGuard no_grad;
        q.flat_p.copy_(flat.flat_p);
      }
      auto opt = make(kind, q.p);
      opt->use_flat(q.flat_p, q.flat_g);
      opt->load_state(state);
      return opt;
    };
    for (const auto& state : {saved, a->state()}) {
      Params resumed(true), cont(true);
      auto c = fresh(resumed, state), d = fresh(cont, saved);
      for (int t = 6; t < 9; ++t) {
        resumed.set_grads(t);
        cont.set_grads(t);
        c->step(lr);
        d->step(lr);
      }
      CHECK(worst(resumed, cont) < 1e-6);
    }
  }
}

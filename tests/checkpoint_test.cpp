// Train, save the optimizer and controller state, load it into fresh objects, continue:
// bit for bit the same as an uninterrupted run (CPU).

#include <catch2/catch.hpp>

#include "estimators/hill.h"
#include "estimators/noise.h"
#include "optimizers/htga.h"
#include "optimizers/sgd.h"
#include "test_util.h"

using namespace htga::optimizers;

namespace {

struct Trainer {
  torch::nn::Linear net{torch::nn::LinearOptions(8, 3)};
  std::unique_ptr<Optimizer> opt;
  HtgaController ctrl;
  htga::estimators::EmaNoise ema{0.9};

  Trainer(bool adam, uint64_t seed) : ctrl(make_options(), torch::kCPU) {
    torch::manual_seed(seed);
    net = torch::nn::Linear(torch::nn::LinearOptions(8, 3));
    if (adam)
      opt = std::make_unique<Adam>(net->parameters());
    else
      opt = std::make_unique<Sgd>(net->parameters(), SgdOptions{0.001, 0.9, true});
  }
  static HtgaOptions make_options() {
    HtgaOptions o(0.05);
    o.warmup_steps = 2;
    o.alpha0_explore = 1.0;
    o.plateau_patience = 3;
    o.max_lr_change = 1.2;
    return o;
  }
  void step(int64_t t) {
    auto gen = at::detail::createCPUGenerator(1000 + t);
    auto x = torch::randn({16, 8}, gen, torch::kFloat32);
    auto y = torch::randint(0, 3, {16}, gen, torch::kInt64);
    opt->zero_grad();
    auto loss = torch::nn::functional::cross_entropy(net->forward(x), y);
    loss.backward();
    std::vector<torch::Tensor> grads;
    for (auto& p : net->parameters()) grads.push_back(p.grad());
    auto noise = ema.observe(grads);
    auto alpha = noise.defined() ? htga::estimators::hill(noise, 5) : torch::tensor(NAN);
    opt->step(ctrl.update(alpha, t, loss.detach()));
  }
  std::vector<torch::Tensor> everything() const {
    auto out = opt->state();
    for (auto& t : ctrl.state()) out.push_back(t);
    out.push_back(ema.mean().defined() ? ema.mean() : torch::empty({0}));
    for (auto& p : net->parameters()) out.push_back(p.detach().clone());
    return out;
  }
};

}  // namespace

TEST_CASE("train, save, load, continue equals an uninterrupted run, bit for bit", "[optimizers]") {
  for (bool adam : {false, true}) {
    INFO((adam ? "adam" : "nesterov sgd"));
    Trainer straight(adam, 5);
    for (int64_t t = 0; t < 20; ++t) straight.step(t);

    Trainer first(adam, 5);
    for (int64_t t = 0; t < 10; ++t) first.step(t);
    htga::test::TempDir dir("ckpt");
    const std::string path = dir.file("state.pt");
    torch::save(first.everything(), path);

    Trainer resumed(adam, 99);  // other initial weights: all must come from the checkpoint
    std::vector<torch::Tensor> saved;
    torch::load(saved, path);
    const size_t n_opt = resumed.opt->state().size(), n_ctrl = 6;
    resumed.opt->load_state({saved.begin(), saved.begin() + n_opt});
    resumed.ctrl.load_state({saved.begin() + n_opt, saved.begin() + n_opt + n_ctrl});
    resumed.ema.set_mean(saved[n_opt + n_ctrl]);
    {
      torch::NoGradGuard no_grad;
      auto params = resumed.net->parameters();
      for (size_t i = 0; i < params.size(); ++i) params[i].copy_(saved[n_opt + n_ctrl + 1 + i]);
    }
    for (int64_t t = 10; t < 20; ++t) resumed.step(t);

    auto a = straight.net->parameters(), b = resumed.net->parameters();
    for (size_t i = 0; i < a.size(); ++i) CHECK(a[i].equal(b[i]));
    CHECK(straight.ctrl.smoothed_alpha().equal(resumed.ctrl.smoothed_alpha()));
  }
  Trainer t(false, 1);
  CHECK_THROWS_AS(t.opt->load_state({}), std::invalid_argument);
  CHECK_THROWS_AS(t.ctrl.load_state({}), std::invalid_argument);
}

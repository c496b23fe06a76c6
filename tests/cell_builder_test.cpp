// The cell builder (canonical config -> typed settings) and the registry's factories: every
// name a grid may use is built by exactly one factory.

#include "experiments/cell_builder.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <set>

#include "estimators/tail.h"
#include "experiments/data/dataset.h"
#include "experiments/error.h"
#include "experiments/models/zoo.h"
#include "experiments/registry.h"
#include "units_util.h"

using htga::experiments::build_settings;
using htga::test::one_cell;
using nlohmann::json;

namespace {
std::set<std::string> names_of(const htga::experiments::Registry& r) {
  std::set<std::string> out;
  for (const auto& e : r.entries) out.insert(e.name);
  return out;
}
std::set<std::string> as_set(const std::vector<std::string>& v) { return {v.begin(), v.end()}; }
}  // namespace

TEST_CASE("builder: typed settings from a canonical config, defaults from the registry", "[builder]") {
  auto s = one_cell({{"name", "htga"}, {"lr", 0.02}, {"base", "momentum"}, {"max_lr_change", 1.5}},
                    {{"epochs", 3}, {"batch_size", 32}, {"scope", "layer"}, {"noise", "probe"}});
  CHECK(s.seed == 5);
  CHECK(s.optimizer.name == "htga");
  CHECK(s.optimizer.update == "momentum");
  CHECK(s.optimizer.lr == 0.02);
  CHECK(s.optimizer.sgd.momentum == 0.9);  // the momentum optimizer's registry default
  CHECK_FALSE(s.optimizer.sgd.nesterov);
  CHECK(s.optimizer.clip_norm == 1.0);  // htga's registry default
  REQUIRE(s.optimizer.htga);
  CHECK(s.optimizer.htga->lr == 0.02);
  CHECK(s.optimizer.htga->max_lr_change == 1.5);
  CHECK(s.optimizer.htga->warmup_steps == 10);
  CHECK(s.optimizer.htga->lr_min == 0);  // null: lr / 10, decided by the controller
  CHECK(s.train.epochs == 3);
  CHECK(s.train.batch_size == 32);
  CHECK(s.train.alpha.scope == htga::experiments::Scope::kLayer);
  CHECK(s.train.alpha.noise == htga::experiments::NoiseSource::kProbe);
  CHECK(s.train.alpha.estimator == "hill");
  s.for_dataset(100);  // 4 steps per epoch
  CHECK(s.steps_per_epoch(100) == 4);
  CHECK(s.train.schedule.total_steps == 12);
  CHECK(s.optimizer.htga->total_steps == 12);
}

TEST_CASE("builder: each optimizer family reads its own parameters", "[builder]") {
  auto clip = one_cell({{"name", "sgd-clip"}, {"lr", 0.1}, {"clip_norm", 2.0}, {"clip_value", 0.5}}, json::object());
  CHECK(clip.optimizer.update == "sgd");
  CHECK(clip.optimizer.clip_norm == 2.0);
  CHECK(clip.optimizer.clip_value == 0.5);
  CHECK_FALSE(clip.optimizer.htga);
  auto adamw = one_cell({{"name", "adamw"}, {"lr", 0.001}, {"beta2", 0.99}}, json::object());
  CHECK(adamw.optimizer.update == "adamw");
  CHECK(adamw.optimizer.adam.decoupled);
  CHECK(adamw.optimizer.adam.beta2 == 0.99);
  CHECK(adamw.optimizer.adam.weight_decay == 0.01);  // adamw's registry default
  CHECK(adamw.optimizer.clip_norm == 0.0);
  auto sgd = one_cell({{"name", "sgd"}, {"lr", 0.3}}, json::object());
  CHECK(sgd.optimizer.update == "sgd");
  CHECK(sgd.optimizer.clip_norm == 0.0);
  CHECK(sgd.optimizer.sgd.momentum == 0.0);
}

TEST_CASE("builder: an optimizer of every family is built over the parameters", "[builder]") {
  std::vector<torch::Tensor> params{torch::zeros({3}, torch::requires_grad())};
  for (const auto& e : htga::experiments::optimizers().entries) {
    INFO(e.name);
    auto s = one_cell({{"name", e.name}}, json::object());
    auto opt = htga::experiments::make_optimizer(s.optimizer, params);
    REQUIRE(opt);
  }
}

TEST_CASE("registry: every name has exactly one factory, and every factory a registry entry", "[builder]") {
  CHECK(as_set(htga::models::factory_names()) == names_of(htga::experiments::models()));
  CHECK(as_set(htga::data::dataset_reader_names()) == names_of(htga::experiments::datasets()));
  CHECK(as_set(htga::estimators::estimator_names()) == names_of(htga::experiments::estimators()));
  // Every family's update has a factory.
  const auto updates = as_set(htga::experiments::optimizer_updates());
  for (const auto& e : htga::experiments::optimizers().entries) {
    auto s = one_cell({{"name", e.name}}, json::object());
    CHECK(updates.count(s.optimizer.update) == 1);
  }
}

TEST_CASE("registry: an unknown name after validation is an internal error, not bad input", "[builder]") {
  htga::experiments::OptimizerSettings s;
  s.update = "lion";
  std::vector<torch::Tensor> params{torch::zeros({3}, torch::requires_grad())};
  CHECK_THROWS_AS(htga::experiments::make_optimizer(s, params), std::logic_error);
  try {
    htga::experiments::make_optimizer(s, params);
  } catch (const htga::InputError&) {
    FAIL("an internal error must not read as bad input");
  } catch (const std::logic_error& e) {
    CHECK(std::string(e.what()).find("internal error") != std::string::npos);
  }
  CHECK_THROWS_AS(htga::models::make_model({{"name", "lenet"}}, {}), htga::InputError);  // user-facing: still bad input
}

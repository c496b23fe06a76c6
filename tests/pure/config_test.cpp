#include "experiments/config.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdio>
#include <set>
#include <string>

#include "experiments/registry.h"

using htga::experiments::cell_key;
using htga::experiments::in_key;
using nlohmann::json;

namespace {

/// A quick-start cell as the grid parser makes it: every parameter present, defaults filled in,
/// numbers normalised.
json quickstart_cell() {
  return json::parse(R"({
    "dataset": {"name": "fashion-mnist", "path": "/usr/share/datasets/fashion-mnist", "train_size": 4096,
                "train_fraction": 1.0, "val_size": 0, "data_seed": 0, "augment": "none"},
    "model": {"name": "mlp", "hidden": [256, 128]},
    "optimizer": {"name": "sgd-clip", "lr": 0.05, "clip_norm": 1.0, "clip_value": 0.0, "weight_decay": 0.0},
    "train": {"epochs": 1, "batch_size": 128, "device": "auto", "estimator": "hill", "alpha_every": 1,
              "noise_ema": 0.9, "noise": "noise", "scope": "global", "probe_batches": 8, "subsample": 0, "k": 0,
              "k_fraction": 0.0, "schedule": "constant", "lr_warmup_steps": 0, "lr_step_every": 1000,
              "lr_gamma": 0.1, "train_eval_size": 10000, "checkpoint_every": 1, "amp": "none",
              "alpha_graph": true},
    "seed": 0})");
}

}  // namespace

TEST_CASE("cell keys are byte for byte those of the databases already written", "[config]") {
  // Computed by the key code before the settings outside the key moved into the registry
  // (experiments/grid.cpp at abe7436): databases find their finished cells by these keys.
  json c = quickstart_cell();
  CHECK(cell_key(c) == "19557bd99e800bd9");
  c["train"]["epochs"] = 2;
  CHECK(cell_key(c) == "45e46fd1199afd77");
  CHECK(cell_key(json::parse(R"({
    "dataset": {"name": "cifar10", "path": "data/cifar10", "val_size": 5000, "augment": "crop-flip"},
    "model": {"name": "resnet20"},
    "optimizer": {"name": "htga", "lr": 0.1, "alpha0": 1.5, "beta": 0.5, "lr_min": null, "lr_max": null,
                  "base": "adam", "clip_norm": 1.0},
    "train": {"epochs": 3, "estimator": "pickands", "noise": "probe", "device": "cuda", "amp": "bf16"},
    "seed": 3})")) == "51cff64b4f0325ee");
  // A name this build does not know: its parameters are kept as stored, the device still dropped.
  CHECK(cell_key(json::parse(R"({"dataset": {"name": "no-such-dataset", "x": 1}, "model": {"name": "mlp"},
                                 "optimizer": {"name": "sgd", "lr": 0.1},
                                 "train": {"device": "cpu", "checkpoint_every": 0}, "seed": 7})")) ==
        "339df2345dfd81a0");
}

TEST_CASE("the settings outside the key change no key", "[config]") {
  const json c = quickstart_cell();
  const std::string key = cell_key(c);
  json d = c;
  d["train"]["device"] = "cuda:1";
  CHECK(cell_key(d) == key);
  d["train"]["checkpoint_every"] = 5;
  CHECK(cell_key(d) == key);
  d["train"]["alpha_graph"] = false;
  CHECK(cell_key(d) == key);
  d["train"].erase("device");
  CHECK(cell_key(d) == key);
  // What a cell computes does change it, and so does the seed.
  d["train"]["amp"] = "bf16";
  CHECK(cell_key(d) != key);
  d = c;
  d["seed"] = 1;
  CHECK(cell_key(d) != key);

  CHECK_FALSE(in_key(c, "train", "device"));
  CHECK(in_key(c, "train", "epochs"));
  CHECK(in_key(c, "optimizer", "lr"));
  CHECK(in_key(c, "train", "no_such_setting"));  // unknown: kept as stored
  CHECK(in_key(c, "seed", "x"));                 // not a registry part

  const json lean = htga::experiments::without_unkeyed(c);
  CHECK_FALSE(lean["train"].contains("device"));
  CHECK_FALSE(lean["train"].contains("checkpoint_every"));
  CHECK_FALSE(lean["train"].contains("alpha_graph"));
  CHECK(lean["train"].size() == c["train"].size() - 3);
  CHECK(lean["seed"] == 0);
  CHECK(lean["optimizer"] == c["optimizer"]);
}

TEST_CASE("the registry is the one place that says which settings are outside the key", "[config]") {
  using namespace htga::experiments;
  std::set<std::string> outside;
  for (const Registry* reg : {&datasets(), &models(), &optimizers(), &estimators(), &train_settings()})
    for (const Entry& e : reg->entries)
      for (const ParamSpec& p : e.params)
        if (!p.in_key) outside.insert(reg->kind + " " + e.name + "." + p.name);
  CHECK(outside == std::set<std::string>{"setting train.alpha_graph", "setting train.checkpoint_every",
                                         "setting train.device", "setting train.loader_threads",
                                         "setting train.test_every", "setting train.val_every"});
}

TEST_CASE("without_defaults keeps what a person wrote", "[config]") {
  const json lean = htga::experiments::without_defaults(quickstart_cell());
  CHECK(lean["dataset"] == json::parse(R"({"name": "fashion-mnist", "train_size": 4096})"));
  CHECK(lean["model"] == json::parse(R"({"name": "mlp"})"));
  CHECK(lean["optimizer"] == json::parse(R"({"name": "sgd-clip", "lr": 0.05})"));
  CHECK(lean["train"] == json::object());
  CHECK(lean["seed"] == 0);
}

TEST_CASE("fnv1a_hex: FNV-1a 64 with the offset basis the keys were made with", "[config]") {
  using htga::experiments::fnv1a_hex;
  CHECK(fnv1a_hex("") == "14650fb0739d0383");  // the offset basis 1469598103934665603 itself
  // One step by hand: (basis xor 'a') * 1099511628211 mod 2^64.
  const uint64_t h = (1469598103934665603ULL ^ static_cast<uint64_t>('a')) * 1099511628211ULL;
  char want[17];
  std::snprintf(want, sizeof want, "%016llx", static_cast<unsigned long long>(h));
  CHECK(fnv1a_hex("a") == want);
  CHECK(fnv1a_hex("a").size() == 16);
}

#pragma once
// A result database with known values, written through the storage API as the runner would:
// the fixture of the report's tests (tests/pure/analysis_test.cpp for the analysis,
// tests/report_test.cpp for the output and the other subcommands). Storage only, no LibTorch.

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "storage/store.h"
#include "test_util.h"

namespace htga::test {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Fixture {
  nlohmann::json dataset, model;
  std::string optimizer_json;  // the optimizer object
  std::string grid = "g";
};

/// One run through the storage API, as the runner would write it.
inline int64_t add_run(storage::Store& store, const Fixture& f, int64_t seed, const std::string& status, double val,
                       double test, const std::vector<double>& alphas = {}) {
  nlohmann::json opt = nlohmann::json::parse(f.optimizer_json);
  nlohmann::json cfg = {{"dataset", f.dataset},
                        {"model", f.model},
                        {"optimizer", opt},
                        {"train", {{"epochs", 1}, {"batch_size", 64}, {"device", "cpu"}}},
                        {"seed", seed}};
  htga::storage::RunRecord r;
  r.cell_key = std::to_string(std::hash<std::string>()(cfg.dump()));
  r.grid = f.grid;
  r.config_json = cfg.dump();
  r.dataset = f.dataset["name"];
  r.model = f.model["name"];
  r.optimizer = opt["name"];
  r.seed = seed;
  r.device = "cpu";
  r.host = "testhost";
  r.git_commit = "abc1234";
  const int64_t id = store.begin_run(r);
  std::vector<htga::storage::StepRow> steps;
  for (size_t i = 0; i < alphas.size(); ++i) {
    htga::storage::StepRow s;
    s.step = static_cast<int64_t>(i);
    s.loss = 2.0 - 0.05 * static_cast<double>(i);
    s.train_acc = 0.5;
    s.lr = 0.1;
    s.alpha_hat = alphas[i];
    s.grad_norm = 1;
    steps.push_back(s);
  }
  store.append_steps(id, steps);
  const int64_t n = static_cast<int64_t>(alphas.size());
  if (std::isfinite(val)) store.add_eval(id, {0, n, "val", 1 - val, val, kNaN, true});
  if (std::isfinite(test)) store.add_eval(id, {0, n, "test", 1 - test, test, kNaN, true});
  htga::storage::RunResult res;
  res.status = status;
  if (status == "finished") {
    res.test_acc = test;
    res.test_loss = 1 - test;
    res.train_acc = test + 0.1;
    res.val_metric = val;
    res.test_metric = test;
  } else {
    res.error = status == "failed" ? "out of memory" : "loss is nan at step 3";
  }
  res.metric = "acc";
  res.steps = n;
  res.train_time_s = 10 + static_cast<double>(seed);
  store.finish_run(id, res);
  return id;
}

inline const Fixture kSgd05{{{"name", "fashion-mnist"}, {"train_size", 512}, {"val_size", 100}},
                            {{"name", "mlp"}, {"hidden", nlohmann::json::array({32})}},
                            R"({"name":"sgd-clip","lr":0.05,"clip_norm":1.0})"};
inline const Fixture kSgd1{kSgd05.dataset, kSgd05.model, R"({"name":"sgd-clip","lr":0.1,"clip_norm":1.0})"};
inline const Fixture kHtga05{kSgd05.dataset, kSgd05.model, R"({"name":"htga","lr":0.1,"beta":0.5,"clip_norm":1.0})"};
inline const Fixture kHtga1{kSgd05.dataset, kSgd05.model, R"({"name":"htga","lr":0.1,"beta":1.0,"clip_norm":1.0})"};
inline const Fixture kHtga2{kSgd05.dataset, kSgd05.model, R"({"name":"htga","lr":0.1,"beta":2.0,"clip_norm":1.0})"};

/// A database with known values:
/// fashion-mnist/mlp (with a validation split), seeds 0..4:
///   sgd-clip lr=0.05: val 0.70, test 0.86-0.88   (best test, worse validation)
///   sgd-clip lr=0.1:  val 0.80, test 0.80..0.84  (best validation: the baseline)
///   htga beta=0.5:    val 0.75, test 0.95
///   htga beta=1:      val 0.85, test 0.81..0.89  (selected; differences 0.01..0.05)
///   htga beta=2:      val 0.95 on seeds 0-3, seed 4 diverged (never selected over a clean one)
/// mnist/mlp (no validation split): one sgd-clip and one htga seed each.
/// cifar10/mlp: sgd-clip seeds 0-2, htga seeds 3-5 (no seed in common: Welch).
struct Db {
  TempDir dir{"report"};
  std::string path = dir.file("htga.db");
  int64_t failed_id = 0, htga1_seed0 = 0;
  Db() {
    storage::Store s(path);
    for (int seed = 0; seed < 5; ++seed) {
      const double base = 0.80 + 0.01 * seed;
      add_run(s, kSgd05, seed, "finished", 0.70, seed % 2 ? 0.87 : 0.86 + 0.01 * (seed == 2));
      add_run(s, kSgd1, seed, "finished", 0.80, base);
      add_run(s, kHtga05, seed, "finished", 0.75, 0.95);
      // alpha_hat 5 on the first 18 of 20 steps, then 1.0 + 0.1 seed and 1.2 + 0.1 seed: the
      // run's median over the last 10% is 1.1 + 0.1 seed, the median over seeds 1.3.
      std::vector<double> alphas(20, 5.0);
      alphas[18] = 1.0 + 0.1 * seed;
      alphas[19] = 1.2 + 0.1 * seed;
      const int64_t id = add_run(s, kHtga1, seed, "finished", 0.85, 0.81 + 0.02 * seed, alphas);
      if (seed == 0) htga1_seed0 = id;
      add_run(s, kHtga2, seed, seed == 4 ? "diverged" : "finished", 0.95, seed == 4 ? kNaN : 0.5);
    }
    failed_id = add_run(s, kSgd05, 9, "failed", kNaN, kNaN);
    s.add_metrics(htga1_seed0, {{0, "val", "mcc", 0.61}, {0, "test", "mcc", 0.6}});

    Fixture mnist_sgd{{{"name", "mnist"}, {"train_size", 512}}, {{"name", "mlp"}}, kSgd1.optimizer_json, "other"};
    Fixture mnist_htga{mnist_sgd.dataset, mnist_sgd.model, kHtga1.optimizer_json, "other"};
    add_run(s, mnist_sgd, 0, "finished", kNaN, 0.9);
    add_run(s, mnist_htga, 0, "finished", kNaN, 0.91);

    Fixture c_sgd{{{"name", "cifar10"}}, {{"name", "mlp"}}, kSgd1.optimizer_json, "c"};
    Fixture c_htga{c_sgd.dataset, c_sgd.model, kHtga1.optimizer_json, "c"};
    for (int seed = 0; seed < 3; ++seed) {
      add_run(s, c_sgd, seed, "finished", 0.5, 0.50 + 0.01 * seed);
      add_run(s, c_htga, seed + 3, "finished", 0.5, 0.60 + 0.02 * seed);
    }
  }
};

}  // namespace htga::test

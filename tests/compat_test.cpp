// experiments/torch_compat (issue 10): bfloat16 autocast through the API of either LibTorch, and
// what the CUDA-only pieces do on a CPU; train.amp and train.alpha_graph through a grid.

#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <sstream>

#include "cli/progress.h"
#include "experiments/grid.h"
#include "experiments/models/transformer.h"
#include "experiments/runner.h"
#include "experiments/torch_compat.h"
#include "storage/store.h"
#include "test_util.h"

using htga::test::TempDir;
using htga::test::write_text;
namespace compat = htga::compat;

TEST_CASE("autocast: bfloat16 matrix products inside, float32 after, nesting restores", "[models]") {
  torch::manual_seed(0);
  auto a = torch::randn({8, 8});
  const torch::Device cpu(torch::kCPU);
  {
    compat::Autocast amp(cpu, true);
    CHECK(torch::mm(a, a).scalar_type() == torch::kBFloat16);
    { compat::Autocast inner(cpu, true); }
    CHECK(torch::mm(a, a).scalar_type() == torch::kBFloat16);  // the outer region still holds
  }
  CHECK(torch::mm(a, a).scalar_type() == torch::kFloat32);
  {
    compat::Autocast off(cpu, false);
    CHECK(torch::mm(a, a).scalar_type() == torch::kFloat32);
  }
}

TEST_CASE("autocast: a transformer trains in bfloat16 with float32 parameters and gradients", "[models]") {
  htga::models::TransformerOptions o;
  o.vocab_size = 20;
  o.max_len = 12;
  o.layers = 1;
  o.d_model = 16;
  o.heads = 2;
  o.ff = 32;
  torch::manual_seed(1);
  htga::models::TransformerClassifier model(o, 3);
  auto x = torch::randint(4, 20, {6, 12}, torch::kLong);
  auto y = torch::tensor({0, 1, 2, 0, 1, 2}, torch::kLong);
  const torch::Device cpu(torch::kCPU);
  torch::Tensor full_loss;
  {
    torch::NoGradGuard no_grad;
    full_loss = torch::nn::functional::cross_entropy(model->forward(x), y);
  }
  torch::Tensor logits, loss;
  {
    compat::Autocast amp(cpu, true);
    logits = model->forward(x);
    loss = torch::nn::functional::cross_entropy(logits, y);
  }
  CHECK(logits.scalar_type() == torch::kBFloat16);
  CHECK(loss.scalar_type() == torch::kFloat32);
  // bfloat16 keeps 8 bits of mantissa: close to the float32 loss, not equal to it.
  CHECK(loss.item<double>() == Approx(full_loss.item<double>()).epsilon(0.05));
  CHECK(loss.item<double>() != full_loss.item<double>());
  loss.backward();
  for (const auto& p : model->parameters()) {
    CHECK(p.scalar_type() == torch::kFloat32);
    REQUIRE(p.grad().defined());
    CHECK(p.grad().scalar_type() == torch::kFloat32);
    CHECK(torch::isfinite(p.grad()).all().item<bool>());
  }
}

TEST_CASE("CUDA-only pieces on a CPU: no stream of its own, no graph, and a reason", "[models]") {
  const torch::Device cpu(torch::kCPU);
  compat::ThreadStream stream(cpu);
  CHECK_FALSE(stream.active());
  compat::synchronize(cpu);  // nothing to wait for
  compat::Graph graph;
  std::string why;
  bool called = false;
  CHECK_FALSE(graph.capture(
      cpu,
      [&] {
        called = true;
        return std::vector<torch::Tensor>{};
      },
      &why));
  CHECK_FALSE(called);
  CHECK_FALSE(graph.ready());
  CHECK(why == "CUDA graphs need a CUDA device");
  CHECK_THROWS(graph.replay());
}

TEST_CASE("train.amp is part of a cell's key, train.alpha_graph is not", "[grid]") {
  auto cells = [](const std::string& train) {
    std::istringstream spec(R"({"name": "g", "defaults": )" + train + R"(,
      "datasets": [{"name": "fashion-mnist", "path": "/nowhere"}], "models": [{"name": "mlp"}],
      "optimizers": [{"name": "sgd-clip", "lr": 0.1}], "seeds": [0]})");
    htga::experiments::GridOptions no_files;
    no_files.check_data = false;
    return htga::experiments::parse_grid(nlohmann::json::parse(spec), "g.json", no_files).cells;
  };
  auto plain = cells("{}");
  auto amp = cells(R"({"amp": ["none", "bf16"]})");
  REQUIRE(amp.size() == 2);
  CHECK(amp[0].key == plain[0].key);  // the default leaves keys as they were
  CHECK(amp[1].key != plain[0].key);
  CHECK(amp[1].label.find("amp=\"bf16\"") != std::string::npos);
  auto graph = cells(R"({"alpha_graph": [true, false]})");
  REQUIRE(graph.size() == 1);  // the same experiment twice
  CHECK(graph[0].key == plain[0].key);
  CHECK(cells(R"({"alpha_graph": false})")[0].key == plain[0].key);
  CHECK_THROWS_WITH(cells(R"({"amp": "fp8"})"), Catch::Contains("amp") && Catch::Contains("bf16"));
}

TEST_CASE("amp bf16 trains a grid cell on the CPU; its losses differ slightly from float32", "[e2e]") {
  REQUIRE(std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"));
  TempDir dir("amp");
  write_text(dir.file("g.json"), R"({
    "name": "amp", "defaults": {"epochs": 1, "batch_size": 128, "device": "cpu", "amp": ["none", "bf16"]},
    "datasets": [{"name": "fashion-mnist", "train_size": 512}],
    "models": [{"name": "mlp", "hidden": [64]}],
    "optimizers": [{"name": "sgd-clip", "lr": 0.1, "clip_norm": 1.0}],
    "seeds": [0]})");
  htga::experiments::RunOptions opts;
  opts.grid_path = dir.file("g.json");
  opts.db_path = dir.file("a.db");
  std::ostringstream progress_text;
  htga::cli::LineProgress progress(progress_text);
  const auto summary = htga::experiments::run_grid(opts, progress);
  CHECK(summary.finished == 2);
  htga::storage::Store store(dir.file("a.db"));
  auto runs = store.runs();
  REQUIRE(runs.size() == 2);
  std::map<int64_t, std::vector<htga::storage::StepRow>> by_run;
  store.for_each_step([&](int64_t id, const htga::storage::StepRow& s) { by_run[id].push_back(s); });
  std::vector<std::vector<htga::storage::StepRow>> steps;
  for (const auto& r : runs) {
    CHECK(r.status == "finished");
    CHECK(r.test_acc > 0.3);
    steps.push_back(by_run[r.id]);
    REQUIRE(steps.back().size() == 4);
    for (const auto& s : steps.back()) {
      CHECK(std::isfinite(s.loss));
      // From the second step (the first starts the gradient EMA): the estimator reads float32.
      if (s.step > 0) CHECK(std::isfinite(s.alpha_hat));
    }
  }
  CHECK(steps[0][0].loss == Approx(steps[1][0].loss).epsilon(0.02));
  CHECK(steps[0][0].loss != steps[1][0].loss);
}

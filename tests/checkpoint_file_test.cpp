// Checkpoint files: saved and loaded bit for bit; a truncated, corrupt, foreign or mismatched
// file is refused with its name, before anything in the training state changes.

#include <ATen/CPUGeneratorImpl.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "estimators/noise.h"
#include "experiments/alpha_monitor.h"
#include "experiments/checkpoint.h"
#include "optimizers/htga.h"
#include "optimizers/sgd.h"
#include "test_util.h"

using htga::experiments::CheckpointError;
using htga::experiments::load_checkpoint;
using htga::experiments::save_checkpoint;
using htga::test::TempDir;

namespace {

/// A model with its optimizer, controller, monitor and a generator, after a few steps.
struct Objects {
  torch::nn::Sequential net;
  std::vector<torch::Tensor> params;
  torch::Tensor flat;
  std::unique_ptr<htga::optimizers::Sgd> opt;
  std::unique_ptr<htga::optimizers::HtgaController> ctrl;
  std::unique_ptr<htga::experiments::AlphaMonitor> monitor;
  at::Generator gen;
  htga::experiments::TrainState state;

  explicit Objects(uint64_t seed, int64_t hidden = 6) {
    torch::manual_seed(seed);
    net = torch::nn::Sequential(torch::nn::Linear(4, hidden), torch::nn::BatchNorm1d(hidden),
                                torch::nn::Linear(hidden, 2));
    params = net->parameters();
    flat = htga::estimators::bind_flat_gradients(params);
    opt = std::make_unique<htga::optimizers::Sgd>(params, htga::optimizers::SgdOptions{0.0, 0.9, false});
    ctrl = std::make_unique<htga::optimizers::HtgaController>(htga::optimizers::HtgaOptions(0.1), torch::kCPU);
    monitor = std::make_unique<htga::experiments::AlphaMonitor>(htga::experiments::AlphaSettings{}, params, flat, seed);
    gen = at::detail::createCPUGenerator(seed);
    state = {net.ptr().get(), opt.get(), ctrl.get(), monitor.get(), {{"order", &gen}}};
  }
  void train(int steps) {
    for (int t = 0; t < steps; ++t) {
      auto x = torch::randn({8, 4}, gen);
      opt->zero_grad();
      net->forward(x).pow(2).mean().backward();
      auto est = monitor->observe(t);
      opt->step(ctrl->update(est.alpha, t));
    }
  }
  torch::Tensor weights() const { return torch::cat({params[0].flatten(), params[2].flatten()}).clone(); }
};

void corrupt(const std::string& file, std::streamoff at) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(at);
  char c = 0;
  f.read(&c, 1);
  f.seekp(at);
  c = static_cast<char>(c ^ 0x5a);
  f.write(&c, 1);
}

}  // namespace

TEST_CASE("checkpoint: save, load, continue: bit for bit an uninterrupted run", "[checkpoint]") {
  TempDir dir("ckpt");
  Objects straight(1), first(1), second(99);
  straight.train(10);
  first.train(5);
  const std::string file = dir.file("sub/c.pt");  // the folder is created
  save_checkpoint(file, first.state, 0, 5);
  CHECK_FALSE(std::filesystem::exists(file + ".tmp"));
  load_checkpoint(file, second.state, torch::kCPU, 0, 5);
  second.train(5);
  CHECK(torch::equal(straight.weights(), second.weights()));
}

TEST_CASE("checkpoint: damaged files are refused with their name, the state untouched", "[checkpoint]") {
  TempDir dir("ckpt-bad");
  Objects a(2);
  a.train(3);
  const std::string file = dir.file("c.pt");
  save_checkpoint(file, a.state, 1, 3);
  const auto size = std::filesystem::file_size(file);
  Objects b(3);
  const auto before = b.weights();
  auto refused = [&](const std::string& f, int64_t epoch, int64_t step, const std::string& what) {
    INFO(what);
    try {
      load_checkpoint(f, b.state, torch::kCPU, epoch, step);
      FAIL("loaded");
    } catch (const CheckpointError& e) {
      CHECK(std::string(e.what()).find(f) != std::string::npos);
      CHECK(std::string(e.what()).find(what) != std::string::npos);
    }
    CHECK(torch::equal(before, b.weights()));
  };
  refused(file, 0, 3, "epoch 1 step 3, the database expects epoch 0 step 3");  // of another epoch
  {
    Objects wide(2, /*hidden=*/7);  // another model: shapes differ
    const auto w0 = wide.weights();
    CHECK_THROWS_AS(load_checkpoint(file, wide.state, torch::kCPU, 1, 3), CheckpointError);
    CHECK(torch::equal(w0, wide.weights()));
  }
  const std::string cut = dir.file("cut.pt");
  std::filesystem::copy_file(file, cut);
  std::filesystem::resize_file(cut, size / 2);
  refused(cut, 1, 3, "truncated");
  std::filesystem::resize_file(cut, 10);
  refused(cut, 1, 3, "truncated");
  const std::string flipped = dir.file("flipped.pt");
  std::filesystem::copy_file(file, flipped);
  corrupt(flipped, static_cast<std::streamoff>(size - 100));
  refused(flipped, 1, 3, "CRC");
  const std::string junk = dir.file("junk.pt");
  htga::test::write_text(junk, "not a checkpoint at all");
  refused(junk, 1, 3, "not a readable checkpoint");
  refused(dir.file("missing.pt"), 1, 3, "cannot read");
  // And the good file still loads.
  load_checkpoint(file, b.state, torch::kCPU, 1, 3);
  CHECK(torch::equal(a.weights(), b.weights()));
}

TEST_CASE("checkpoint: an unusable file is set aside, not read again", "[checkpoint]") {
  TempDir dir("ckpt-aside");
  const std::string file = dir.file("c.pt");
  htga::test::write_text(file, "x");
  const std::string aside = htga::experiments::set_aside(file);
  CHECK(aside == file + ".bad");
  CHECK_FALSE(std::filesystem::exists(file));
  CHECK(std::filesystem::exists(aside));
  CHECK(htga::experiments::set_aside(file).empty());  // nothing there any more
}

// Threads: --threads overrides OMP_NUM_THREADS; one thread is bit for bit reproducible; more
// threads give the same results within float tolerance; the run record says how many.

#include <ATen/Parallel.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>
#include <vector>

#include "cli/progress.h"
#include "experiments/runner.h"
#include "storage/store.h"
#include "test_util.h"

using htga::test::TempDir;
using htga::test::write_text;

namespace {

/// (loss, alpha_hat, grad_norm) of every step of the grid's only run, and its record.
struct Trace {
  std::vector<double> loss, alpha, norm;
  htga::storage::RunRecord run;
};

Trace run_with(const TempDir& dir, const std::string& name, int threads, std::string* progress = nullptr) {
  htga::experiments::RunOptions o;
  o.grid_path = dir.file("g.json");
  o.db_path = dir.file(name + ".db");
  o.threads = threads;
  std::ostringstream text;
  htga::cli::LineProgress lines(text);
  const auto s = htga::experiments::run_grid(o, lines);
  REQUIRE(s.finished == 1);
  if (progress) *progress = text.str();
  htga::storage::Store store(o.db_path);
  Trace t;
  t.run = store.runs().at(0);
  store.for_each_step([&t](int64_t, const htga::storage::StepRow& r) {
    t.loss.push_back(r.loss);
    t.alpha.push_back(r.alpha_hat);
    t.norm.push_back(r.grad_norm);
  });
  return t;
}

/// Equal value by value, NaN equal to NaN (steps without an estimate).
bool same(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))) return false;
  return true;
}

}  // namespace

TEST_CASE("--threads: one thread reproduces bit for bit, two agree within float tolerance", "[trainer]") {
  REQUIRE(std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"));
  TempDir dir("threads");
  // HTGA: the rate follows alpha_hat, so a difference in the estimate would show in the losses.
  write_text(dir.file("g.json"), R"({"name": "threads",
    "defaults": {"epochs": 1, "batch_size": 64, "device": "cpu", "alpha_every": 1},
    "datasets": [{"name": "fashion-mnist", "train_size": 1024}], "models": [{"name": "mlp", "hidden": [256, 128]}],
    "optimizers": [{"name": "htga", "lr": 0.05, "alpha0": 1.5, "beta": 1.0, "clip_norm": 1.0, "warmup_steps": 2}],
    "seeds": [0]})");
  const int before = at::get_num_threads();
  std::string progress;
  const Trace a = run_with(dir, "a", 1, &progress);
  CHECK(progress.find("threads: 1, from --threads 1") != std::string::npos);
  const Trace b = run_with(dir, "b", 1);
  const Trace c = run_with(dir, "c", 2);
  CHECK(at::get_num_threads() == before);  // the caller's setting is given back
  REQUIRE(a.loss.size() == 16);
  CHECK(same(a.loss, b.loss));
  CHECK(same(a.alpha, b.alpha));
  CHECK(same(a.norm, b.norm));
  REQUIRE(c.loss.size() == a.loss.size());
  for (size_t i = 0; i < a.loss.size(); ++i) {
    INFO("step " << i);
    CHECK(c.loss[i] == Approx(a.loss[i]).epsilon(1e-4));
    if (std::isnan(a.alpha[i]))
      CHECK(std::isnan(c.alpha[i]));
    else
      CHECK(c.alpha[i] == Approx(a.alpha[i]).epsilon(1e-3));
    CHECK(c.norm[i] == Approx(a.norm[i]).epsilon(1e-4));
  }
  CHECK(a.run.threads == 1);
  CHECK(c.run.threads == 2);
  CHECK(c.run.test_acc == Approx(a.run.test_acc).margin(0.01));
}

#if !defined(HTGA_SERIAL_OWN_LOOPS)  // the build on the Python wheel leaves OpenMP out (CMakeLists.txt)
TEST_CASE("htga's own at::parallel_for loops run on the intra-op threads", "[trainer]") {
  // ATen's parallel_for is a template compiled into our code: built without OpenMP it runs every
  // range on the calling thread whatever at::set_num_threads says (it did, until the build
  // linked OpenMP). With two threads, two ranges of one item each go to two workers.
  const int before = at::get_num_threads();
  at::set_num_threads(2);
  std::vector<int> worker(2, -1);
  at::parallel_for(0, 2, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) worker[static_cast<size_t>(b)] = at::get_thread_num();
  });
  at::set_num_threads(before);
  CHECK(worker[0] != worker[1]);
  CHECK(std::min(worker[0], worker[1]) == 0);
}
#endif

TEST_CASE("a bad OMP_NUM_THREADS: one line naming it, no LibTorch backtrace; --threads makes it irrelevant", "[cli]") {
  REQUIRE(std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"));
  TempDir dir("omp_env");
  write_text(dir.file("g.json"), R"({"name": "omp", "defaults": {"epochs": 1, "batch_size": 128, "device": "cpu"},
    "datasets": [{"name": "fashion-mnist", "train_size": 256, "val_size": 128}], "models": [{"name": "mlp", "hidden": [16]}],
    "optimizers": [{"name": "sgd-clip", "lr": 0.1, "clip_norm": 1.0}], "seeds": [0]})");
  const std::string saved = std::getenv("OMP_NUM_THREADS") ? std::getenv("OMP_NUM_THREADS") : "";
  for (const char* bad : {"0", "-3", "abc", "99999999999999999999"}) {
    INFO("OMP_NUM_THREADS=" << bad);
    setenv("OMP_NUM_THREADS", bad, 1);
    const std::string db = dir.file(std::string("r") + bad + ".db");
    const auto refused = htga::test::htga_cmd("run grid " + dir.file("g.json") + " --db " + db + " -q", dir);
    CHECK(refused.code == 2);
    CHECK(refused.out.find(std::string("htga: error: OMP_NUM_THREADS=\"") + bad + "\"") != std::string::npos);
    CHECK(refused.out.find("frame #") == std::string::npos);
    CHECK(refused.out.find("Exception raised") == std::string::npos);
    CHECK_FALSE(std::filesystem::exists(db));  // refused before anything was stored
    const auto ran = htga::test::htga_cmd("run grid " + dir.file("g.json") + " --db " + db + " -q --threads 1", dir);
    CHECK(ran.code == 0);
    CHECK(ran.out.find("frame #") == std::string::npos);
    CHECK(ran.out.find("Warning") == std::string::npos);
  }
  setenv("OMP_NUM_THREADS", saved.c_str(), 1);
}

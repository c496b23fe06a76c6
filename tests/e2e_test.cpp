// End to end: the htga binary on a tiny grid of real Fashion-MNIST (installed by scripts/setup).

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "storage/store.h"
#include "test_util.h"

using htga::test::htga_cmd;
using htga::test::read_file;
using htga::test::TempDir;
using htga::test::write_text;

namespace {

int lines_of(const std::string& text) { return static_cast<int>(std::count(text.begin(), text.end(), '\n')); }

const char* kTinyGrid = R"({
  "name": "tiny",
  "defaults": {"epochs": 1, "batch_size": 128, "device": "cpu"},
  "datasets": [{"name": "fashion-mnist", "train_size": 512}],
  "models": [{"name": "mlp", "hidden": [64]}],
  "optimizers": [
    {"name": "sgd-clip", "lr": 0.1, "clip_norm": 1.0},
    {"name": "htga", "lr": 0.1, "alpha0": 1.5, "beta": 1.0, "clip_norm": 1.0, "warmup_steps": 1}
  ],
  "seeds": [0]
})";

}  // namespace

TEST_CASE("a tiny grid runs end to end, then report and export read it", "[e2e]") {
  REQUIRE(std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"));
  TempDir dir("e2e");
  const std::string db = dir.file("res/htga.db");
  write_text(dir.file("tiny.json"), kTinyGrid);

  auto run = htga_cmd("run grid " + dir.file("tiny.json") + " --db " + db, dir);
  INFO(run.out);
  REQUIRE(run.code == 0);
  {
    htga::storage::Store store(db);
    auto runs = store.runs();
    REQUIRE(runs.size() == 2);
    for (const auto& r : runs) {
      CHECK(r.status == "finished");
      CHECK(r.steps == 4);  // 512 / 128
      CHECK(r.device == "cpu");
      CHECK(r.test_acc > 0.3);  // chance is 0.1
      CHECK(r.test_acc <= 1.0);
      auto evals = store.evals(r.id);  // test, then train accuracy for the generalization gap
      REQUIRE(evals.size() == 2);
      CHECK(evals[0].split == "test");
      CHECK(evals[0].final);
      CHECK(evals[0].acc == Approx(r.test_acc));
      CHECK(evals[1].split == "train");
      CHECK(r.train_acc == Approx(evals[1].acc));
      CHECK(r.gen_gap == Approx(r.train_acc - r.test_acc));
    }
    int steps = 0, alphas = 0;
    store.for_each_step([&](int64_t run_id, const htga::storage::StepRow& s) {
      ++steps;
      alphas += std::isfinite(s.alpha_hat) ? 1 : 0;
      CHECK(std::isfinite(s.loss));
      CHECK(s.grad_norm > 0);
      if (runs[0].id == run_id) CHECK(s.lr == Approx(0.1));  // sgd-clip: constant rate
    });
    CHECK(steps == 8);
    CHECK(alphas == 6);  // every step but the first of each run (no gradient mean yet)
  }

  // A second run skips what is finished and writes nothing.
  auto again = htga_cmd("run grid " + dir.file("tiny.json") + " --db " + db, dir);
  CHECK(again.code == 0);
  CHECK(again.out.find("2 skipped") != std::string::npos);
  CHECK(htga::storage::Store(db).runs().size() == 2);

  auto report = htga_cmd("report --compare sgd-clip --db " + db, dir);
  INFO(report.out);
  CHECK(report.code == 0);
  CHECK(report.out.find("baseline: sgd-clip") != std::string::npos);
  CHECK(report.out.find("htga") != std::string::npos);

  auto steps = htga_cmd("export steps --db " + db + " --out " + dir.file("steps.csv"), dir);
  CHECK(steps.code == 0);
  const std::string steps_csv = read_file(dir.file("steps.csv"));
  CHECK(steps_csv.rfind("run_id,step,epoch,loss,train_acc,lr,alpha_hat,grad_norm,alpha_smooth,phase,clip_coef\n", 0) ==
        0);
  CHECK(lines_of(steps_csv) == 9);

  auto runs = htga_cmd("export runs --db " + db + " --out " + dir.file("runs.csv"), dir);
  CHECK(runs.code == 0);
  const std::string runs_csv = read_file(dir.file("runs.csv"));
  CHECK(runs_csv.rfind("run_id,grid,status,dataset,model,optimizer,seed,test_acc,test_loss,", 0) == 0);
  CHECK(runs_csv.find("optimizer.lr") != std::string::npos);
  CHECK(runs_csv.find("dataset.train_size") != std::string::npos);
  CHECK(lines_of(runs_csv) == 3);

  // Unwritable places: exit 2, one line, nothing half-written.
  auto bad_out = htga_cmd("export runs --db " + db + " --out /proc/htga/runs.csv", dir);
  CHECK(bad_out.code == 2);
  CHECK(lines_of(bad_out.out) == 1);
  CHECK(bad_out.out.find("/proc/htga/runs.csv: cannot") != std::string::npos);
  auto bad_db = htga_cmd("run grid " + dir.file("tiny.json") + " --db /proc/htga/htga.db", dir);
  CHECK(bad_db.code == 2);
  CHECK(lines_of(bad_db.out) == 1);
  CHECK(bad_db.out.find("/proc/htga/htga.db: cannot") != std::string::npos);

  // The CSVs read with pandas, with the values we stored.
  const std::string py = "/usr/bin/python3 -c \"import pandas as pd; s = pd.read_csv('" + dir.file("steps.csv") +
                         "'); r = pd.read_csv('" + dir.file("runs.csv") +
                         "'); assert len(s) == 8 and len(r) == 2; assert (r['dataset.train_size'] == 512).all();"
                         " assert s['alpha_hat'].notna().sum() == 6\"";
  CHECK(std::system(py.c_str()) == 0);
}

TEST_CASE("bad input: one line, exit code 2, nothing written", "[e2e]") {
  TempDir dir("e2ebad");
  const std::string db = dir.file("htga.db");

  write_text(dir.file("broken.json"), "{\"name\": \"x\", \"datasets\": [");
  auto r = htga_cmd("run grid " + dir.file("broken.json") + " --db " + db, dir);
  CHECK(r.code == 2);
  CHECK(lines_of(r.out) == 1);
  CHECK(r.out.find(dir.file("broken.json") + ": not valid JSON") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(db));

  std::string grid = kTinyGrid;
  write_text(dir.file("unknown.json"), grid.replace(grid.find("\"htga\""), 6, "\"htgax\""));
  r = htga_cmd("run grid " + dir.file("unknown.json") + " --db " + db, dir);
  CHECK(r.code == 2);
  CHECK(lines_of(r.out) == 1);
  CHECK(r.out.find(
            "/optimizers/1/name: unknown optimizer \"htgax\"; valid: sgd, sgd-clip, momentum, adam, adamw, htga") !=
        std::string::npos);
  CHECK_FALSE(std::filesystem::exists(db));

  grid = kTinyGrid;
  write_text(dir.file("nodata.json"),
             grid.replace(grid.find("\"train_size\""), 0, "\"path\": \"" + dir.file("nowhere") + "\", "));
  r = htga_cmd("run grid " + dir.file("nodata.json") + " --db " + db, dir);
  CHECK(r.code == 2);
  CHECK(lines_of(r.out) == 1);
  CHECK(r.out.find("dataset folder not found") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(db));

  // A truncated data file: found while loading, before any run row is written.
  const std::string data = dir.file("fmnist");
  std::filesystem::create_directories(data);
  auto labels = htga::test::idx_bytes({20}, std::vector<uint8_t>(20, 1));
  auto images = htga::test::idx_bytes({20, 2, 2}, std::vector<uint8_t>(80, 7));
  images.resize(images.size() - 10);
  htga::test::write_bytes(data + "/train-images-idx3-ubyte.gz", images, true);
  htga::test::write_bytes(data + "/train-labels-idx1-ubyte.gz", labels, true);
  htga::test::write_bytes(data + "/t10k-images-idx3-ubyte.gz", images, true);
  htga::test::write_bytes(data + "/t10k-labels-idx1-ubyte.gz", labels, true);
  grid = kTinyGrid;
  write_text(dir.file("truncated.json"),
             grid.replace(grid.find("\"train_size\": 512"), 17, "\"path\": \"" + data + "\""));
  r = htga_cmd("run grid " + dir.file("truncated.json") + " --db " + db, dir);
  CHECK(r.code == 2);
  CHECK(lines_of(r.out) == 1);
  CHECK(r.out.find(data + "/train-images-idx3-ubyte.gz: truncated") != std::string::npos);
  CHECK(htga::storage::Store(db).runs().empty());

  r = htga_cmd("run grid " + dir.file("missing.json") + " --db " + db, dir);
  CHECK(r.code == 2);
  CHECK(r.out.find("cannot read grid file") != std::string::npos);

  r = htga_cmd("report --db " + dir.file("none.db"), dir);
  CHECK(r.code == 2);
  CHECK(r.out.find("no such database") != std::string::npos);

  r = htga_cmd("export steps --db /nonexistent/htga.db --out " + dir.file("s.csv"), dir);
  CHECK(r.code == 2);
  CHECK_FALSE(std::filesystem::exists(dir.file("s.csv")));

  r = htga_cmd("run gird x.json", dir);  // a typo in the subcommand
  CHECK(r.code == 2);
}

TEST_CASE("a diverging run is recorded and the grid goes on", "[e2e]") {
  TempDir dir("e2ediv");
  const std::string db = dir.file("htga.db");
  write_text(dir.file("div.json"), R"({"name": "div", "defaults": {"device": "cpu"},
    "datasets": [{"name": "fashion-mnist", "train_size": 512}],
    "models": [{"name": "mlp", "hidden": [64]}],
    "optimizers": [{"name": "sgd", "lr": [1e6, 0.1]}], "seeds": [0]})");
  auto r = htga_cmd("run grid " + dir.file("div.json") + " --db " + db, dir);
  INFO(r.out);
  CHECK(r.code == 0);
  auto runs = htga::storage::Store(db).runs();
  REQUIRE(runs.size() == 2);
  CHECK(runs[0].status == "diverged");
  CHECK(runs[0].error.find("loss is") == 0);
  CHECK(runs[0].steps <= 4);
  CHECK(runs[0].error.find("at step " + std::to_string(runs[0].steps - 1)) != std::string::npos);
  CHECK(runs[1].status == "finished");
  int rows = 0;
  htga::storage::Store(db).for_each_step([&](int64_t id, const htga::storage::StepRow&) { rows += id == runs[0].id; });
  CHECK(rows == runs[0].steps);  // the steps up to the diverged one are kept
  // A diverged run is a result: running the grid again skips both cells.
  auto again = htga_cmd("run grid " + dir.file("div.json") + " --db " + db, dir);
  CHECK(again.out.find("2 skipped") != std::string::npos);
  CHECK(htga::storage::Store(db).runs().size() == 2);
}

TEST_CASE("alpha_hat settings: per-layer probe estimates reach the database and the export", "[e2e]") {
  TempDir dir("e2ealpha");
  const std::string db = dir.file("htga.db");
  write_text(dir.file("alpha.json"), R"({"name": "alpha",
    "defaults": {"device": "cpu", "noise": "probe", "probe_batches": 3, "alpha_every": 2, "scope": "layer",
                 "estimator": ["hill", "stable"]},
    "datasets": [{"name": "fashion-mnist", "train_size": 512}],
    "models": [{"name": "mlp", "hidden": [64]}],
    "optimizers": [{"name": "htga", "lr": 0.1, "warmup_steps": 0}], "seeds": [0]})");
  auto r = htga_cmd("run grid " + dir.file("alpha.json") + " --db " + db, dir);
  INFO(r.out);
  REQUIRE(r.code == 0);
  htga::storage::Store store(db);
  auto runs = store.runs();
  REQUIRE(runs.size() == 2);
  for (const auto& run : runs) {
    CHECK(run.status == "finished");
    auto layers = store.layers(run.id);
    REQUIRE(layers.size() == 4);  // two weights, two biases
    CHECK(layers[0].name == "layers.0.weight");
    CHECK(layers[0].numel == 784 * 64);
  }
  int rows = 0, finite = 0;
  store.for_each_layer_alpha([&](int64_t, const htga::storage::LayerAlphaRow& a) {
    ++rows;
    finite += std::isfinite(a.alpha_hat) ? 1 : 0;
    CHECK(a.step % 2 == 0);
  });
  CHECK(rows == 2 * 2 * 4);  // 2 runs x steps 0 and 2 x 4 layers
  CHECK(finite >= rows / 2);
  int with_alpha = 0;
  store.for_each_step([&](int64_t, const htga::storage::StepRow& s) { with_alpha += std::isfinite(s.alpha_hat); });
  CHECK(with_alpha == 4);  // the median over layers, on the estimate steps

  auto exp = htga_cmd("export alpha --db " + db + " --out " + dir.file("alpha.csv"), dir);
  CHECK(exp.code == 0);
  const std::string csv = read_file(dir.file("alpha.csv"));
  CHECK(csv.rfind("run_id,step,layer,name,numel,alpha_hat\n", 0) == 0);
  CHECK(lines_of(csv) == rows + 1);
  CHECK(csv.find("layers.0.weight") != std::string::npos);
}

TEST_CASE("every optimizer trains Fashion-MNIST well above chance", "[e2e]") {
  TempDir dir("e2eopt");
  const std::string db = dir.file("htga.db");
  write_text(dir.file("opt.json"), R"({"name": "optimizers", "defaults": {"device": "cpu", "epochs": 2},
    "datasets": [{"name": "fashion-mnist", "train_size": 4096}],
    "models": [{"name": "mlp", "hidden": [256, 128]}],
    "optimizers": [{"name": "sgd", "lr": 0.1}, {"name": "sgd-clip", "lr": 0.1},
                   {"name": "momentum", "lr": 0.05, "nesterov": true}, {"name": "adam", "lr": 0.003},
                   {"name": "adamw", "lr": 0.003}, {"name": "htga", "lr": 0.1}],
    "seeds": [0]})");
  auto r = htga_cmd("run grid " + dir.file("opt.json") + " --db " + db, dir);
  INFO(r.out);
  REQUIRE(r.code == 0);
  auto runs = htga::storage::Store(db).runs();
  REQUIRE(runs.size() == 6);
  for (const auto& run : runs) {
    INFO(run.optimizer << ": " << run.test_acc);
    CHECK(run.status == "finished");
    CHECK(run.test_acc > 0.70);
  }
}

TEST_CASE("htga with beta = 0 trains bit for bit like its base optimizer", "[e2e]") {
  // The estimator never draws from the training RNG and never changes gradients.
  TempDir dir("e2ebeta0");
  const std::string db = dir.file("htga.db");
  write_text(dir.file("b0.json"), R"({"name": "beta0", "defaults": {"device": "cpu"},
    "datasets": [{"name": "fashion-mnist", "train_size": 1024}],
    "models": [{"name": "mlp", "hidden": [64]}],
    "optimizers": [{"name": "sgd-clip", "lr": 0.1, "clip_norm": 1.0},
                   {"name": "htga", "lr": 0.1, "beta": 0.0, "clip_norm": 1.0},
                   {"name": "adam", "lr": 0.003},
                   {"name": "htga", "lr": 0.003, "beta": 0.0, "clip_norm": 0.0, "base": "adam"}],
    "seeds": [3]})");
  auto r = htga_cmd("run grid " + dir.file("b0.json") + " --db " + db, dir);
  INFO(r.out);
  REQUIRE(r.code == 0);
  htga::storage::Store store(db);
  auto runs = store.runs();
  REQUIRE(runs.size() == 4);
  std::map<int64_t, std::vector<double>> losses;
  std::map<int64_t, std::vector<double>> phases;
  store.for_each_step([&](int64_t id, const htga::storage::StepRow& s) {
    losses[id].push_back(s.loss);
    phases[id].push_back(s.phase);
  });
  CHECK(losses[runs[0].id] == losses[runs[1].id]);  // exact equality, every step
  CHECK(runs[0].test_acc == runs[1].test_acc);
  CHECK(losses[runs[2].id] == losses[runs[3].id]);
  CHECK(runs[2].test_acc == runs[3].test_acc);
  CHECK(std::isnan(phases[runs[0].id][0]));  // baselines have no phase
  CHECK(phases[runs[1].id][5] == 0.0);       // htga: normal
}

TEST_CASE("a learning-rate schedule shapes every optimizer's logged rate", "[e2e]") {
  TempDir dir("e2esched");
  const std::string db = dir.file("htga.db");
  write_text(dir.file("s.json"), R"({"name": "sched",
    "defaults": {"device": "cpu", "schedule": "step", "lr_step_every": 2, "lr_gamma": 0.5},
    "datasets": [{"name": "fashion-mnist", "train_size": 512}],
    "models": [{"name": "mlp", "hidden": [32]}],
    "optimizers": [{"name": "sgd-clip", "lr": 0.1, "clip_value": 0.01}], "seeds": [0]})");
  auto r = htga_cmd("run grid " + dir.file("s.json") + " --db " + db, dir);
  INFO(r.out);
  REQUIRE(r.code == 0);
  std::vector<double> lrs;
  htga::storage::Store(db).for_each_step([&](int64_t, const htga::storage::StepRow& s) { lrs.push_back(s.lr); });
  REQUIRE(lrs.size() == 4);
  CHECK(lrs[0] == Approx(0.1));
  CHECK(lrs[1] == Approx(0.1));
  CHECK(lrs[2] == Approx(0.05));
  CHECK(lrs[3] == Approx(0.05));
}

TEST_CASE("help and list", "[e2e]") {
  TempDir dir("e2ehelp");
  auto r = htga_cmd("--help", dir);
  CHECK(r.code == 0);
  CHECK(r.out.find("report") != std::string::npos);
  r = htga_cmd("run grid --help", dir);
  CHECK(r.code == 0);
  CHECK(r.out.find("--dry-run") != std::string::npos);
  r = htga_cmd("list", dir);
  CHECK(r.code == 0);
  for (const char* name : {"fashion-mnist", "mlp", "sgd-clip", "htga", "hill", "alpha0"})
    CHECK(r.out.find(name) != std::string::npos);
  // Names and descriptions in two columns, as wide as the section's longest name.
  auto column = [&](const std::string& name) {
    const auto at = r.out.find("\n  " + name + " ");
    REQUIRE(at != std::string::npos);
    return r.out.find_first_not_of(' ', at + 3 + name.size()) - at;
  };
  CHECK(column("mlp") == column("resnet18-imagenet"));
}

TEST_CASE("htga slurm: a dry run prints both scripts; bad options are refused before anything", "[e2e]") {
  TempDir dir("slurm");
  write_text(dir.file("tiny.json"), kTinyGrid);  // 2 cells
  auto dry = htga_cmd("slurm submit " + dir.file("tiny.json") + " --tasks 2 --out " + dir.file("s") +
                          " --time 1:00:00 --partition p --max-running 1 --signal-before 120 --max-requeues 5 "
                          "--sbatch-arg=--account=abc --dry-run",
                      dir);
  INFO(dry.out);
  REQUIRE(dry.code == 0);
  for (const std::string& line : std::vector<std::string>{
           "#SBATCH --array=0-1%1", "#SBATCH --signal=B:USR2@120", "#SBATCH --requeue", "#SBATCH --open-mode=append",
           "#SBATCH --time=1:00:00", "#SBATCH --partition=p", "#SBATCH --account=abc", "--shard \"$i/2\"",
           "--publish \"$shared\" --requeue-max 5", "merge.sbatch", "merge '" + dir.file("s") + "'/htga.db"})
    CHECK(dry.out.find(line) != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir.file("s")));  // a dry run writes nothing
  auto many = htga_cmd("slurm submit " + dir.file("tiny.json") + " --tasks 3 --out " + dir.file("s"), dir);
  CHECK(many.code == 2);
  CHECK(many.out.find("--tasks 3: more than the grid's 2 cells") != std::string::npos);
  auto none = htga_cmd("slurm status " + dir.file("nowhere"), dir);
  CHECK(none.code == 2);
  CHECK(none.out.find("jobs.json: no submission there") != std::string::npos);
  auto resume = htga_cmd("slurm submit --resume " + dir.file("nowhere"), dir);
  CHECK(resume.code == 2);
  CHECK(resume.out.find("no submission to resume there") != std::string::npos);
}

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "experiments/analysis/analysis.h"
#include "storage/query.h"
#include "storage/store.h"
#include "test_util.h"

using htga::analysis::AnalysisOptions;
using htga::cli::ExportOptions;
using htga::cli::ReportOptions;
using htga::storage::Store;
using htga::test::TempDir;
using nlohmann::json;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Fixture {
  json dataset, model;
  std::string optimizer_json;  // the optimizer object
  std::string grid = "g";
};

/// One run through the storage API, as the runner would write it.
int64_t add_run(Store& store, const Fixture& f, int64_t seed, const std::string& status, double val, double test,
                const std::vector<double>& alphas = {}) {
  json opt = json::parse(f.optimizer_json);
  json cfg = {{"dataset", f.dataset},
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

const Fixture kSgd05{{{"name", "fashion-mnist"}, {"train_size", 512}, {"val_size", 100}},
                     {{"name", "mlp"}, {"hidden", json::array({32})}},
                     R"({"name":"sgd-clip","lr":0.05,"clip_norm":1.0})"};
const Fixture kSgd1{kSgd05.dataset, kSgd05.model, R"({"name":"sgd-clip","lr":0.1,"clip_norm":1.0})"};
const Fixture kHtga05{kSgd05.dataset, kSgd05.model, R"({"name":"htga","lr":0.1,"beta":0.5,"clip_norm":1.0})"};
const Fixture kHtga1{kSgd05.dataset, kSgd05.model, R"({"name":"htga","lr":0.1,"beta":1.0,"clip_norm":1.0})"};
const Fixture kHtga2{kSgd05.dataset, kSgd05.model, R"({"name":"htga","lr":0.1,"beta":2.0,"clip_norm":1.0})"};

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
    Store s(path);
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

std::string report(const std::string& db, const std::string& format, const std::string& select = "best",
                   std::vector<std::string> grids = {}) {
  ReportOptions o;
  o.db_path = db;
  o.format = format;
  o.analysis.select = select;
  o.analysis.filter.grids = std::move(grids);
  std::ostringstream out;
  htga::cli::run_report(o, out);
  return out.str();
}

const json& row_of(const json& rows, const std::string& dataset, const std::string& optimizer) {
  for (const auto& r : rows)
    if (r["dataset"] == dataset && r["optimizer"] == optimizer && r["selected"] == true) return r;
  FAIL("no selected row for " << dataset << " " << optimizer);
  throw std::logic_error("unreachable");
}

std::string export_csv(const std::string& db, const std::string& what,
                       const std::function<void(ExportOptions&)>& set = {}) {
  ExportOptions o;
  o.what = what;
  o.db_path = db;
  o.out = "-";
  if (set) set(o);
  std::ostringstream out;
  htga::cli::run_export(o, out);
  return out.str();
}

int lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

}  // namespace

TEST_CASE("report selects each family's configuration by validation, not test", "[report]") {
  Db db;
  const json rows = json::parse(report(db.path, "json"));
  const json& base = row_of(rows, "fashion-mnist", "sgd-clip");
  CHECK(base["config"]["optimizer"]["lr"] == 0.1);  // lr=0.05 has the better test accuracy
  CHECK(base["baseline"] == true);
  CHECK(base["selected_by"] == "val");
  CHECK(base["label"] == "lr=0.1");
  const json& htga = row_of(rows, "fashion-mnist", "htga");
  CHECK(htga["config"]["optimizer"]["beta"] == 1.0);  // beta=0.5: best test; beta=2: a diverged seed
  CHECK(htga["label"] == "beta=1.0 lr=0.1");
  CHECK_FALSE(htga["config"]["train"].contains("device"));
  CHECK_FALSE(htga["config"].contains("seed"));

  // Test accuracy of the baseline: 0.80..0.84, by hand (see stats_test).
  CHECK(base["n"] == 5);
  CHECK(base["mean"].get<double>() == Approx(0.82));
  CHECK(base["std"].get<double>() == Approx(0.015811388300841858));
  CHECK(base["ci_low"].get<double>() == Approx(0.8003675683852245));
  CHECK(base["ci_high"].get<double>() == Approx(0.8396324316147756));
  CHECK(base["diff"].is_null());
  CHECK(base["p_t"].is_null());
  CHECK(base["alpha_hat_median"].is_null());  // no steps logged

  // htga - baseline, paired by seed: differences 0.01..0.05.
  CHECK(htga["n"] == 5);
  CHECK(htga["diff_test"] == "paired");
  CHECK(htga["n_pairs"] == 5);
  CHECK(htga["diff"].get<double>() == Approx(0.03));
  const double half = 2.7764451051977987 * 0.015811388300841858 / std::sqrt(5.0);
  CHECK(htga["diff_ci_low"].get<double>() == Approx(0.03 - half));
  CHECK(htga["diff_ci_high"].get<double>() == Approx(0.03 + half));
  CHECK(htga["p_t"].get<double>() == Approx(0.013235599563682768).epsilon(1e-6));
  CHECK(htga["p_wilcoxon"].get<double>() == Approx(0.0625));
  CHECK(htga["alpha_hat_median"].get<double>() == Approx(1.3));
  CHECK(htga["gen_gap"].get<double>() == Approx(0.1));
  CHECK(htga["time_s"].get<double>() == Approx(12));
  CHECK(htga["summary"].get<std::string>().find("htga beats sgd-clip on fashion-mnist/mlp by +3.00 points [1.04, "
                                                "4.96], p = 0.013, 5 seeds") == 0);

  // No validation split: selected by test, said so; one seed each is too few.
  const json& mnist = row_of(rows, "mnist", "htga");
  CHECK(mnist["selected_by"] == "test");
  CHECK(mnist["summary"].get<std::string>().find("too few") != std::string::npos);
  CHECK(mnist["ci_low"].is_null());

  // No seed in common: Welch's test, no Wilcoxon.
  const json& cifar = row_of(rows, "cifar10", "htga");
  CHECK(cifar["diff_test"] == "welch");
  CHECK(cifar["n_pairs"] == 0);
  CHECK(cifar["diff"].get<double>() == Approx(0.62 - 0.51));
  CHECK(cifar["p_wilcoxon"].is_null());
  CHECK(cifar["p_t"].get<double>() < 0.05);

  for (const char* key : {"dataset", "model", "optimizer", "config", "n", "mean", "std", "ci_low", "ci_high", "diff",
                          "diff_ci_low", "diff_ci_high", "p_t", "p_wilcoxon", "alpha_hat_median"})
    for (const auto& r : rows) CHECK(r.contains(key));
}

TEST_CASE("report --select all shows every configuration and counts diverged runs", "[report]") {
  Db db;
  const json rows = json::parse(report(db.path, "json", "all", {"g"}));
  REQUIRE(rows.size() == 5);  // 2 sgd-clip + 3 htga configurations, one group
  CHECK(rows[0]["baseline"] == true);
  int selected = 0;
  for (const auto& r : rows) {
    selected += r["selected"].get<bool>();
    if (r["config"]["optimizer"].value("beta", 0.0) == 2.0) {
      CHECK(r["diverged"] == 1);
      CHECK(r["n"] == 4);
      CHECK(r["runs"] == 5);
      CHECK_FALSE(r["selected"].get<bool>());
    }
    if (r["optimizer"] == "sgd-clip" && r["config"]["optimizer"]["lr"] == 0.05) {
      CHECK(r["failed"] == 1);
      CHECK(r["mean"].get<double>() == Approx(0.866));
    }
  }
  CHECK(selected == 2);
}

TEST_CASE("report tables: aligned text, markdown and CSV", "[report]") {
  Db db;
  const std::string table = report(db.path, "table");
  INFO(table);
  CHECK(table.find("baseline: sgd-clip lr=0.1") != std::string::npos);
  CHECK(table.find("  htga beats sgd-clip on fashion-mnist/mlp by +3.00 points [1.04, 4.96], p = 0.013, 5 seeds") !=
        std::string::npos);
  CHECK(table.find("82.00") != std::string::npos);  // accuracies in percent points
  CHECK(table.find("warning: no run in this group has a validation split") != std::string::npos);
  CHECK(table.find("cannot reach p < 0.05") != std::string::npos);  // 5 pairs: Wilcoxon's floor is 0.0625
  // Aligned: the header's "test" column ends where the rows' values end.
  std::istringstream in(table);
  std::string line, header, base_line;
  bool in_group = false;  // the fashion-mnist group's table
  while (std::getline(in, line)) {
    if (line.rfind("fashion-mnist/mlp", 0) == 0) in_group = true;
    if (in_group && header.empty() && line.rfind("  optimizer", 0) == 0) header = line;
    if (in_group && base_line.empty() && line.rfind("  sgd-clip ", 0) == 0) base_line = line;
  }
  REQUIRE_FALSE(header.empty());
  REQUIRE_FALSE(base_line.empty());
  CHECK(header.find(" test ") + 5 == base_line.find(" 82.00 ") + 6);

  const std::string md = report(db.path, "markdown");
  CHECK(md.find("| optimizer ") != std::string::npos);
  CHECK(md.find("| --------- |") != std::string::npos);
  CHECK(md.find("- htga beats sgd-clip") != std::string::npos);

  const std::string csv = report(db.path, "csv");
  CHECK(csv.rfind("group,dataset,model,optimizer,label,metric,selected,baseline,selected_by,runs,n,", 0) == 0);
  CHECK(csv.find("optimizer.lr") != std::string::npos);
  CHECK(lines(csv) == 1 + 6);  // header + 2 rows in each of 3 groups

  ReportOptions bad;
  bad.db_path = db.path;
  bad.analysis.compare = "adam";
  std::ostringstream out;
  CHECK_THROWS_WITH(htga::cli::run_report(bad, out), Catch::Contains("no runs of that optimizer"));
  bad.analysis.compare = "sgd-clip";
  bad.db_path = db.dir.file("none.db");
  CHECK_THROWS_WITH(htga::cli::run_report(bad, out), Catch::Contains("no such database"));
}

TEST_CASE("report --metric reads a named metric", "[report]") {
  Db db;
  htga::storage::Store s(db.path);
  CHECK(htga::storage::final_metric(s.database(), db.htga1_seed0, "test", "mcc") == Approx(0.6));
  CHECK(htga::storage::final_metric(s.database(), db.htga1_seed0, "val", "acc") == Approx(0.85));
  CHECK(std::isnan(htga::storage::final_metric(s.database(), db.htga1_seed0, "test", "f1")));
  AnalysisOptions o;
  o.metric = "loss";  // lower is better: selection by the lowest validation loss
  o.filter.grids = {"g"};
  o.select = "all";
  const auto groups = htga::analysis::analyse(s, o);
  REQUIRE(groups.size() == 1);
  for (const auto& r : groups[0].rows) {
    if (r.selected && r.optimizer == "sgd-clip") CHECK(r.config["optimizer"]["lr"] == 0.1);  // val loss 0.2 < 0.3
    if (r.baseline) CHECK(r.mean == Approx(1 - 0.82));
  }
}

TEST_CASE("export: tidy CSV with filters, to stdout or a file", "[report]") {
  Db db;
  const std::string steps = export_csv(db.path, "steps", [](ExportOptions& o) { o.filter.optimizers = {"htga"}; });
  CHECK(steps.rfind("run_id,step,epoch,loss,train_acc,lr,alpha_hat,grad_norm,alpha_smooth,phase,clip_coef\n", 0) == 0);
  CHECK(lines(steps) == 1 + 5 * 20);  // only htga beta=1 logged steps
  const std::string one = export_csv(db.path, "steps", [&](ExportOptions& o) {
    o.filter.run_ids = {db.htga1_seed0};
    o.with_config = true;
  });
  CHECK(lines(one) == 21);
  CHECK(one.find(",grid,status,dataset,model,optimizer,seed,") != std::string::npos);
  CHECK(one.find("optimizer.beta") != std::string::npos);
  CHECK(one.find("\n" + std::to_string(db.htga1_seed0) +
                 ",19,0,1.05,0.5,0.1,1.2,1,,,,g,finished,fashion-mnist,mlp,"
                 "htga,0,") != std::string::npos);

  const std::string runs = export_csv(db.path, "runs", [](ExportOptions& o) { o.filter.statuses = {"diverged"}; });
  CHECK(lines(runs) == 2);
  CHECK(runs.find("loss is nan at step 3") != std::string::npos);
  CHECK(runs.find(",optimizer.beta,") != std::string::npos);
  CHECK(runs.find("val_metric,test_metric") != std::string::npos);

  const std::string grid_c = export_csv(db.path, "runs", [](ExportOptions& o) {
    o.filter.grids = {"c"};
    o.filter.optimizers = {"htga"};
  });
  CHECK(lines(grid_c) == 1 + 3);

  const std::string evals =
      export_csv(db.path, "evals", [&](ExportOptions& o) { o.filter.run_ids = {db.htga1_seed0}; });
  CHECK(evals.rfind("run_id,epoch,step,split,loss,acc,top5,final,mcc\n", 0) == 0);
  CHECK(evals.find(std::to_string(db.htga1_seed0) + ",0,20,test,0.19,0.81,,1,0.6\n") != std::string::npos);
  CHECK(evals.find(std::to_string(db.htga1_seed0) + ",0,20,val,0.15,0.85,,1,0.61\n") != std::string::npos);

  const std::string summary = export_csv(db.path, "summary");
  CHECK(summary.rfind("group,dataset,model,optimizer,", 0) == 0);
  CHECK(summary.find("optimizer.beta") != std::string::npos);
  CHECK(lines(summary) == 7);

  // A file: written whole, the count returned.
  ExportOptions o;
  o.what = "steps";
  o.db_path = db.path;
  o.out = db.dir.file("out/steps.csv");
  CHECK(htga::cli::run_export(o) == 100);
  std::ifstream in(o.out);
  std::stringstream text;
  text << in.rdbuf();
  CHECK(lines(text.str()) == 101);
  o.what = "nope";
  CHECK_THROWS_AS(htga::cli::run_export(o), std::invalid_argument);
}

TEST_CASE("runs and show", "[report]") {
  Db db;
  htga::cli::RunsOptions ro;
  ro.db_path = db.path;
  ro.filter.statuses = {"failed", "diverged"};
  std::ostringstream list;
  htga::cli::run_runs(ro, list);
  INFO(list.str());
  CHECK(lines(list.str()) == 1 + 2 + 1);  // header, two runs, counts
  CHECK(list.str().find("2 runs: 1 diverged, 1 failed") != std::string::npos);
  CHECK(list.str().find("lr=0.05") != std::string::npos);

  htga::cli::ShowOptions so;
  so.db_path = db.path;
  so.run_id = db.failed_id;
  std::ostringstream show;
  htga::cli::run_show(so, show);
  INFO(show.str());
  CHECK(show.str().find("status      failed") != std::string::npos);
  CHECK(show.str().find("error       out of memory") != std::string::npos);
  CHECK(show.str().find("host testhost") != std::string::npos);
  CHECK(show.str().find("git abc1234") != std::string::npos);
  CHECK(show.str().find("\"clip_norm\": 1.0") != std::string::npos);

  so.run_id = db.htga1_seed0;
  so.json = true;
  std::ostringstream js;
  htga::cli::run_show(so, js);
  const json j = json::parse(js.str());
  CHECK(j["val_metric"].get<double>() == Approx(0.85));
  CHECK(j["alpha_hat_median_last10"].get<double>() == Approx(1.1));
  CHECK(j["metrics"].size() == 2);
  so.run_id = 999;
  CHECK_THROWS_WITH(htga::cli::run_show(so, js), Catch::Contains("no run with id 999"));
}

TEST_CASE("the plot script draws figures from the database", "[report]") {
  if (std::system("/usr/bin/python3 -c 'import matplotlib, pandas' 2>/dev/null") != 0) {
    WARN("python3 with matplotlib and pandas is missing: plot script not tested");
    return;
  }
  Db db;
  const std::string out = db.dir.file("plots");
  const std::string cmd = std::string("/usr/bin/python3 ") + HTGA_SOURCE_DIR + "/scripts/plot.py --db " + db.path +
                          " --out " + out + " > " + db.dir.file("plot.log") + " 2>&1";
  REQUIRE(std::system(cmd.c_str()) == 0);
  for (const char* name : {"alpha_hat", "curves", "comparison", "alpha_vs_lr_batch"})
    for (const char* ext : {".png", ".svg"}) {
      const std::string file = out + "/" + name + ext;
      INFO(file);
      REQUIRE(std::filesystem::exists(file));
      CHECK(std::filesystem::file_size(file) > 1000);
    }
}

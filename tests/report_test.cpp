#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "experiments/error.h"
#include "report_db.h"
#include "storage/sqlite.h"
#include "storage/store.h"
#include "test_util.h"

using htga::cli::ExportOptions;
using htga::cli::ReportOptions;
using htga::test::Db;
using htga::test::htga_cmd;
using htga::test::read_file;
using htga::test::TempDir;
using nlohmann::json;

namespace {

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

/// Sets a run's stored config to text that is not JSON, as a damaged row would hold.
void damage_config(const std::string& db, int64_t run_id) {
  htga::storage::Store s(db);
  htga::storage::Statement q(s.database(), "UPDATE runs SET config = '{broken' WHERE id = ?1");
  q.bind(1, run_id);
  q.run();
}

/// What is written to std::cerr while it lives.
class CaptureStderr {
 public:
  CaptureStderr() : old_(std::cerr.rdbuf(text_.rdbuf())) {}
  ~CaptureStderr() { std::cerr.rdbuf(old_); }
  std::string str() const { return text_.str(); }

 private:
  std::ostringstream text_;
  std::streambuf* old_;
};

}  // namespace

TEST_CASE("report --format json: one object per row with the analysis's values, NaN as null", "[report]") {
  // The numbers themselves are tested on analyse() (tests/pure/analysis_test.cpp).
  Db db;
  const json rows = json::parse(report(db.path, "json"));
  REQUIRE(rows.size() == 6);  // the selected configuration of two families in each of three groups
  const json& base = row_of(rows, "fashion-mnist", "sgd-clip");
  CHECK(base["config"]["optimizer"]["lr"] == 0.1);
  CHECK(base["baseline"] == true);
  CHECK(base["selected_by"] == "val");
  CHECK(base["label"] == "lr=0.1");
  CHECK(base["n"] == 5);
  CHECK(base["seeds"] == json::array({0, 1, 2, 3, 4}));
  CHECK(base["mean"].get<double>() == Approx(0.82));
  CHECK(base["diff"].is_null());
  CHECK(base["diff_test"].is_null());
  CHECK(base["alpha_hat_median"].is_null());
  CHECK(base["summary"].is_null());
  const json& htga = row_of(rows, "fashion-mnist", "htga");
  CHECK(htga["diff_test"] == "paired");
  CHECK(htga["diff"].get<double>() == Approx(0.03));
  CHECK(htga["test_values"].size() == 5);
  CHECK(htga["summary"].get<std::string>().find("htga beats sgd-clip") == 0);
  CHECK(row_of(rows, "mnist", "htga")["ci_low"].is_null());

  for (const char* key : {"dataset", "model", "optimizer", "config", "n", "mean", "std", "ci_low", "ci_high", "diff",
                          "diff_ci_low", "diff_ci_high", "p_t", "p_wilcoxon", "alpha_hat_median"})
    for (const auto& r : rows) CHECK(r.contains(key));
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
  bad.db_path = db.dir.file("none.db");
  std::ostringstream out;
  CHECK_THROWS_WITH(htga::cli::run_report(bad, out), Catch::Contains("no such database"));
}

TEST_CASE("report: unknown names exit with code 2 and list the valid ones", "[report]") {
  Db db;
  ReportOptions o;
  o.db_path = db.path;
  o.format = "html";
  std::ostringstream out;
  CHECK_THROWS_AS(htga::cli::run_report(o, out), htga::InputError);
  CHECK_THROWS_WITH(htga::cli::run_report(o, out),
                    "report: unknown format \"html\"; valid: table, markdown, csv, json");
  CHECK(out.str().empty());

  // The binary: exit code 2 and the valid values, never an empty table with exit code 0.
  const std::string report = "report --db " + db.path;
  auto r = htga_cmd(report + " --metric f2", db.dir);
  CHECK(r.code == 2);
  CHECK(r.out.find("--metric \"f2\": no run that matches has that metric; valid: acc, loss, mcc") != std::string::npos);
  r = htga_cmd(report + " --compare adam", db.dir);
  CHECK(r.code == 2);
  CHECK(r.out.find("valid: htga, sgd-clip") != std::string::npos);
  r = htga_cmd(report + " --format html", db.dir);  // CLI11's check: "html not in {table,markdown,csv,json}"
  CHECK(r.code == 2);
  CHECK(r.out.find("table,markdown,csv,json") != std::string::npos);
  r = htga_cmd(report + " --select first", db.dir);
  CHECK(r.code == 2);
  CHECK(r.out.find("best,all") != std::string::npos);
  r = htga_cmd(report + " --metric mcc --format csv", db.dir);
  CHECK(r.code == 0);
}

TEST_CASE("report only reads: the file stays byte for byte, also in a folder it cannot write", "[report]") {
  namespace fs = std::filesystem;
  Db db;
  {
    htga::storage::Database d(db.path);
    d.exec("PRAGMA journal_mode = DELETE");  // opened for writing, the store would switch it to WAL
  }
  const std::string bytes = read_file(db.path);
  // Permissions do not stop root: there the binary runs as nobody, for whom the folder is read-only.
  const bool root = ::geteuid() == 0;
  if (!root) fs::permissions(db.dir.str(), fs::perms::owner_read | fs::perms::owner_exec);
  std::string out;
  try {
    out = report(db.path, "json");
  } catch (...) {
    if (!root) fs::permissions(db.dir.str(), fs::perms::owner_all);
    throw;
  }
  if (!root) fs::permissions(db.dir.str(), fs::perms::owner_all);
  CHECK(json::parse(out).size() == 6);
  CHECK(read_file(db.path) == bytes);
  CHECK_FALSE(fs::exists(db.path + "-wal"));
  CHECK_FALSE(fs::exists(db.path + "-shm"));
  CHECK_FALSE(fs::exists(db.path + "-journal"));

  if (root) {
    const std::string as = "setpriv --reuid=65534 --regid=65534 --clear-groups ";
    const std::string log = db.dir.file("report.log");
    if (std::system((as + HTGA_BINARY + " --version > " + log + " 2>&1").c_str()) != 0) {
      WARN("cannot run htga as nobody here (setpriv missing or the binary unreachable): skipped");
      return;
    }
    const int status = std::system((as + HTGA_BINARY + " report --db " + db.path + " > " + log + " 2>&1").c_str());
    INFO(read_file(log));
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(read_file(log).find("htga beats sgd-clip on fashion-mnist/mlp") != std::string::npos);
    CHECK(read_file(db.path) == bytes);
    CHECK_FALSE(fs::exists(db.path + "-wal"));
  }
}

TEST_CASE("report: a run with a damaged config is named on stderr; the others are reported", "[report]") {
  Db db;
  damage_config(db.path, db.htga1_seed0);
  CaptureStderr err;
  const json rows = json::parse(report(db.path, "json"));
  const std::string warning = err.str();
  INFO(warning);
  CHECK(rows.size() == 6);
  CHECK(row_of(rows, "fashion-mnist", "htga")["n"] == 4);  // its other four seeds
  CHECK(lines(warning) == 1);
  CHECK(warning.rfind("htga: warning: " + db.path + ": run " + std::to_string(db.htga1_seed0) +
                          " skipped: its stored config is not valid JSON (",
                      0) == 0);

  const auto r = htga_cmd("report --db " + db.path, db.dir);
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(r.out.find("run " + std::to_string(db.htga1_seed0) + " skipped: its stored config is not valid JSON") !=
        std::string::npos);
  CHECK(r.out.find("htga beats sgd-clip on fashion-mnist/mlp") != std::string::npos);
}

TEST_CASE("report --plots: a summary.json that would replace the database is refused first", "[report]") {
  Db db;
  const std::string path = db.dir.file("summary.json");  // a database named as --plots' output
  std::filesystem::copy_file(db.path, path);
  const std::string bytes = read_file(path);
  ReportOptions o;
  o.db_path = path;
  o.plots = true;
  o.plots_dir = db.dir.str();
  std::ostringstream out;
  CHECK_THROWS_AS(htga::cli::run_report(o, out), htga::storage::OpenError);  // bad input: exit code 2
  CHECK_THROWS_WITH(htga::cli::run_report(o, out),
                    path + ": is the database " + path + " itself; choose another output path");
  CHECK(out.str().empty());
  CHECK(read_file(path) == bytes);
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

TEST_CASE("the plot script draws figures from the database", "[plots]") {
  if (std::system("/usr/bin/python3 -c 'import matplotlib, pandas' 2>/dev/null") != 0)
    htga::test::skip("python3 with matplotlib and pandas is missing: plot script not tested");
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

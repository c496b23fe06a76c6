#include <catch2/catch.hpp>
#include <cmath>

#include "storage/store.h"
#include "test_util.h"

using htga::storage::RunRecord;
using htga::storage::StepRow;
using htga::storage::Store;
using htga::test::TempDir;

namespace {
RunRecord sample_run(const std::string& key) {
  RunRecord r;
  r.cell_key = key;
  r.grid = "g";
  r.config_json = R"({"seed":1})";
  r.dataset = "fashion-mnist";
  r.model = "mlp";
  r.optimizer = "htga";
  r.seed = 1;
  r.device = "cpu";
  r.htga_version = "0.1.0";
  r.torch_version = "1.13.0";
  return r;
}
}  // namespace

TEST_CASE("runs, steps and evaluations round-trip", "[storage]") {
  TempDir dir("store");
  const std::string path = dir.file("sub/htga.db");  // the parent folder is created
  int64_t id = 0;
  {
    Store s(path);
    id = s.begin_run(sample_run("k1"));
    s.append_steps(id, {{0, 0, 2.3, 0.1, 0.05, NAN, 1.5}, {1, 0, 2.1, 0.25, 0.06, 1.7, 1.2}});
    s.add_eval(id, {0, 2, "test", 0.9, 0.71, NAN, true});
    s.set_layers(id, {{0, "layers.0.weight", 50}, {1, "layers.0.bias", 5}});
    s.append_layer_alphas(id, {{1, 0, 1.9}, {1, 1, NAN}});
    s.finish_run(id, {"finished", "", 0.71, 0.9, 0.75, 2, 1.25});
  }
  Store s(path);  // reopened: everything committed
  auto run = s.find_run("k1");
  REQUIRE(run);
  CHECK(run->id == id);
  CHECK(run->status == "finished");
  CHECK(run->test_acc == Approx(0.71));
  CHECK(run->steps == 2);
  CHECK(run->optimizer == "htga");
  CHECK(run->torch_version == "1.13.0");
  CHECK_FALSE(s.find_run("other"));

  std::vector<StepRow> rows;
  s.for_each_step([&](int64_t rid, const StepRow& r) {
    CHECK(rid == id);
    rows.push_back(r);
  });
  REQUIRE(rows.size() == 2);
  CHECK(std::isnan(rows[0].alpha_hat));  // NaN stored as NULL, read back as NaN
  CHECK(rows[1].alpha_hat == Approx(1.7));
  CHECK(rows[1].train_acc == Approx(0.25));
  auto ev = s.evals(id);
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].acc == Approx(0.71));
  CHECK(ev[0].final);
  CHECK(std::isnan(ev[0].top5));
  CHECK(run->train_acc == Approx(0.75));
  CHECK(run->gen_gap == Approx(0.04));
  auto layers = s.layers(id);
  REQUIRE(layers.size() == 2);
  CHECK(layers[0].name == "layers.0.weight");
  CHECK(layers[1].numel == 5);
  std::vector<htga::storage::LayerAlphaRow> alphas;
  s.for_each_layer_alpha([&](int64_t, const htga::storage::LayerAlphaRow& r) { alphas.push_back(r); });
  REQUIRE(alphas.size() == 2);
  CHECK(alphas[0].alpha_hat == Approx(1.9));
  CHECK(std::isnan(alphas[1].alpha_hat));
}

TEST_CASE("a version-1 database is upgraded in place, keeping its rows", "[storage]") {
  TempDir dir("migrate");
  const std::string path = dir.file("v1.db");
  {
    // The version-1 schema as htga 0.1.0 wrote it, with one finished run.
    htga::storage::Database db(path);
    db.exec(R"sql(
      CREATE TABLE runs (id INTEGER PRIMARY KEY, cell_key TEXT NOT NULL UNIQUE, grid TEXT NOT NULL,
        config TEXT NOT NULL, status TEXT NOT NULL, error TEXT, dataset TEXT NOT NULL, model TEXT NOT NULL,
        optimizer TEXT NOT NULL, seed INTEGER NOT NULL, device TEXT, started_at REAL, finished_at REAL,
        test_acc REAL, test_loss REAL, train_time_s REAL, steps INTEGER, htga_version TEXT, torch_version TEXT);
      CREATE TABLE steps (run_id INTEGER NOT NULL, step INTEGER NOT NULL, epoch INTEGER NOT NULL, loss REAL,
        train_acc REAL, lr REAL, alpha_hat REAL, grad_norm REAL, PRIMARY KEY (run_id, step)) WITHOUT ROWID;
      CREATE TABLE evals (run_id INTEGER NOT NULL, epoch INTEGER NOT NULL, step INTEGER NOT NULL,
        split TEXT NOT NULL, loss REAL, acc REAL, PRIMARY KEY (run_id, epoch, split)) WITHOUT ROWID;
      INSERT INTO runs (cell_key, grid, config, status, dataset, model, optimizer, seed, test_acc, steps)
        VALUES ('k', 'g', '{}', 'finished', 'fashion-mnist', 'mlp', 'sgd-clip', 0, 0.8, 3);
      INSERT INTO steps VALUES (1, 0, 0, 2.0, 0.1, 0.1, 1.5, 1.0);
      INSERT INTO evals VALUES (1, 0, 3, 'test', 0.5, 0.8);
      PRAGMA user_version = 1;)sql");
  }
  Store s(path);
  auto run = s.find_run("k");
  REQUIRE(run);
  CHECK(run->test_acc == Approx(0.8));
  CHECK(std::isnan(run->train_acc));
  auto ev = s.evals(run->id);
  REQUIRE(ev.size() == 1);
  CHECK_FALSE(ev[0].final);
  int steps = 0;
  s.for_each_step([&](int64_t, const StepRow&) { ++steps; });
  CHECK(steps == 1);
  s.set_layers(run->id, {{0, "w", 10}});  // the new tables exist
  CHECK(s.layers(run->id).size() == 1);
}

TEST_CASE("restarting an unfinished run replaces its rows", "[storage]") {
  TempDir dir("restart");
  Store s(dir.file("htga.db"));
  const auto id = s.begin_run(sample_run("k"));
  s.append_steps(id, {{0, 0, 1, 0, 0.1, NAN, 1}, {1, 0, 1, 0, 0.1, NAN, 1}});
  CHECK(s.begin_run(sample_run("k")) == id);  // same cell, same run id
  int n = 0;
  s.for_each_step([&](int64_t, const StepRow&) { ++n; });
  CHECK(n == 0);
  CHECK(s.find_run("k")->status == "running");
  CHECK(s.runs().size() == 1);
}

TEST_CASE("foreign and newer databases are refused", "[storage]") {
  TempDir dir("foreign");
  {
    htga::storage::Database db(dir.file("other.db"));
    db.exec("CREATE TABLE t (x)");
  }
  CHECK_THROWS_WITH(Store(dir.file("other.db")),
                    dir.file("other.db") + ": not an htga database (it has tables but no htga schema)");
  { Store s(dir.file("new.db")); }
  {
    htga::storage::Database db(dir.file("new.db"));
    db.exec("PRAGMA user_version=99");
  }
  CHECK_THROWS_AS(Store(dir.file("new.db")), htga::storage::OpenError);
  htga::test::write_text(dir.file("junk.db"), "this is not a database at all, just some text to fill a page");
  CHECK_THROWS_AS(Store(dir.file("junk.db")), std::exception);
}

// Issue 16, the storage side: fencing of claims, read-only opens, foreign files, merge that never
// changes its inputs, output paths that would destroy a database, bad database paths, damaged
// configs, honest final metrics.

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <functional>
#include <thread>

#include "storage/merge.h"
#include "storage/paths.h"
#include "storage/query.h"
#include "storage/store.h"
#include "test_util.h"

using htga::storage::Claim;
using htga::storage::Database;
using htga::storage::Fence;
using htga::storage::LostClaim;
using htga::storage::OpenError;
using htga::storage::RunRecord;
using htga::storage::Statement;
using htga::storage::Store;
using htga::test::read_file;
using htga::test::TempDir;
using htga::test::write_text;
namespace fs = std::filesystem;

namespace {

constexpr auto kRO = Store::Mode::kReadOnly;

RunRecord record(const std::string& key) {
  RunRecord r;
  r.cell_key = key;
  r.grid = "g";
  r.config_json = R"({"seed":1,"optimizer":{"name":"sgd","lr":0.1}})";
  r.dataset = "fashion-mnist";
  r.model = "mlp";
  r.optimizer = "sgd";
  r.seed = 1;
  r.device = "cpu";
  r.htga_version = "0.1.0";
  r.torch_version = "1.13.1";
  r.host = "here";
  r.pid = 1;
  return r;
}

htga::storage::RunResult outcome(const std::string& status, const std::string& error, double test_acc, double test_loss,
                                 double train_acc, int64_t steps, double time_s) {
  htga::storage::RunResult r;
  r.status = status;
  r.error = error;
  r.test_acc = test_acc;
  r.test_loss = test_loss;
  r.train_acc = train_acc;
  r.steps = steps;
  r.train_time_s = time_s;
  return r;
}

int64_t count(Database& db, const char* sql) {
  Statement q(db, sql);
  q.step();
  return q.get_int(0);
}

int64_t pragma(const std::string& path, const char* name) {
  Database db(path, Database::Access::kReadOnly);
  return count(db, (std::string("PRAGMA ") + name).c_str());
}

/// Row counts of every table: what "nothing written" compares.
std::vector<int64_t> row_counts(Database& db) {
  std::vector<int64_t> n;
  for (const char* sql :
       {"SELECT count(*) FROM runs", "SELECT count(*) FROM steps", "SELECT count(*) FROM evals",
        "SELECT count(*) FROM metrics", "SELECT count(*) FROM layers", "SELECT count(*) FROM alpha_layers"})
    n.push_back(count(db, sql));
  return n;
}

/// The tables of schema version 4 exactly as htga 0.1 wrote them (v1 and its three migrations,
/// columns in the order ALTER TABLE added them), with one finished run.
const char* kSchemaV4Literal = R"sql(
  CREATE TABLE runs (id INTEGER PRIMARY KEY, cell_key TEXT NOT NULL UNIQUE, grid TEXT NOT NULL,
    config TEXT NOT NULL, status TEXT NOT NULL, error TEXT, dataset TEXT NOT NULL, model TEXT NOT NULL,
    optimizer TEXT NOT NULL, seed INTEGER NOT NULL, device TEXT, started_at REAL, finished_at REAL,
    test_acc REAL, test_loss REAL, train_time_s REAL, steps INTEGER, htga_version TEXT, torch_version TEXT,
    train_acc REAL, gen_gap REAL, git_commit TEXT, host TEXT, pid INTEGER, heartbeat_at REAL, checkpoint TEXT,
    checkpoint_epoch INTEGER, checkpoint_step INTEGER, metric TEXT, val_metric REAL, test_metric REAL);
  CREATE INDEX runs_group ON runs(dataset, model, optimizer);
  CREATE INDEX runs_status ON runs(status);
  CREATE TABLE steps (run_id INTEGER NOT NULL REFERENCES runs(id), step INTEGER NOT NULL, epoch INTEGER NOT NULL,
    loss REAL, train_acc REAL, lr REAL, alpha_hat REAL, grad_norm REAL, alpha_smooth REAL, phase INTEGER,
    clip_coef REAL, PRIMARY KEY (run_id, step)) WITHOUT ROWID;
  CREATE TABLE evals (run_id INTEGER NOT NULL REFERENCES runs(id), epoch INTEGER NOT NULL, step INTEGER NOT NULL,
    split TEXT NOT NULL, loss REAL, acc REAL, top5 REAL, final INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, epoch, split)) WITHOUT ROWID;
  CREATE TABLE layers (run_id INTEGER NOT NULL REFERENCES runs(id), layer INTEGER NOT NULL, name TEXT NOT NULL,
    numel INTEGER NOT NULL, PRIMARY KEY (run_id, layer)) WITHOUT ROWID;
  CREATE TABLE alpha_layers (run_id INTEGER NOT NULL REFERENCES runs(id), step INTEGER NOT NULL,
    layer INTEGER NOT NULL, alpha_hat REAL, PRIMARY KEY (run_id, step, layer)) WITHOUT ROWID;
  CREATE TABLE metrics (run_id INTEGER NOT NULL REFERENCES runs(id), epoch INTEGER NOT NULL, split TEXT NOT NULL,
    name TEXT NOT NULL, value REAL, PRIMARY KEY (run_id, epoch, split, name)) WITHOUT ROWID;
  INSERT INTO runs (cell_key, grid, config, status, dataset, model, optimizer, seed, test_acc, steps, metric,
    test_metric) VALUES ('k4', 'g', '{"seed":0}', 'finished', 'fashion-mnist', 'mlp', 'sgd', 0, 0.8, 3, 'acc', 0.8);
  INSERT INTO steps (run_id, step, epoch, loss) VALUES (1, 0, 0, 2.0), (1, 1, 0, 1.5), (1, 2, 0, 1.2);
  INSERT INTO evals (run_id, epoch, step, split, loss, acc, final) VALUES (1, 0, 3, 'test', 0.5, 0.8, 1);
  PRAGMA user_version = 4;)sql";

void make_v4(const std::string& path, const std::string& journal_mode = "DELETE") {
  Database db(path);
  db.exec(("PRAGMA journal_mode=" + journal_mode).c_str());
  db.exec(kSchemaV4Literal);
}

/// A database of this htga with `n` finished runs keyed prefix0, prefix1, ...
void make_current(const std::string& path, int n, const std::string& prefix = "k") {
  Store s(path);
  for (int i = 0; i < n; ++i) {
    const int64_t id = s.begin_run(record(prefix + std::to_string(i)));
    s.append_steps(id, {{0, 0, 2.0, 0.1, 0.1, NAN, 1.0}, {1, 0, 1.8, 0.2, 0.1, NAN, 1.0}});
    s.add_eval(id, {0, 2, "test", 0.6, 0.7, NAN, true});
    s.finish_run(id, outcome("finished", "", 0.7, 0.6, 0.75, 2, 1.0));
  }
}

/// Runs `fn` in a child process that cannot write `folder`: as root (whom permissions do not
/// stop) the child becomes nobody; otherwise the folder is made read-only for the call. The
/// child's exit code: 0 when fn returned true, 1 when false, 2 on an exception (its message on
/// stderr).
int in_read_only_folder(const std::string& folder, const std::function<bool()>& fn) {
  const bool root = ::geteuid() == 0;
  if (!root) ::chmod(folder.c_str(), 0555);
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (root && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(3);
    int code = 2;
    try {
      code = fn() ? 0 : 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "in_read_only_folder: %s\n", e.what());
    }
    ::_exit(code);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!root) ::chmod(folder.c_str(), 0755);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// Runs `fn` in a child process that may write the folder of `file` but not `file` itself (as
/// root: the child becomes nobody, the folder writable by all for the call).
int with_read_only_file(const std::string& file, const std::function<bool()>& fn) {
  const bool root = ::geteuid() == 0;
  const std::string folder = fs::path(file).parent_path().string();
  ::chmod(root ? folder.c_str() : file.c_str(), root ? 01777 : 0444);
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (root && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(3);
    int code = 2;
    try {
      code = fn() ? 0 : 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "with_read_only_file: %s\n", e.what());
    }
    ::_exit(code);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::chmod(root ? folder.c_str() : file.c_str(), root ? 0755 : 0644);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

// ---- fencing ----

TEST_CASE("fencing: a claim taken over makes every write of the old holder throw and change nothing", "[storage]") {
  TempDir dir("fence");
  const std::string path = dir.file("htga.db");
  Store a(path), b(path);  // two connections, as two processes
  const Claim first = a.claim_run(record("k"), /*stale_after_s=*/60, /*resume=*/false);
  REQUIRE(first.run_id != 0);
  CHECK(first.token == 1);
  CHECK(first.fence().run_id == first.run_id);
  CHECK(first.fence().token == 1);
  a.append_steps(first.fence(), {{0, 0, 2.0, 0.1, 0.1, NAN, 1.0}});
  a.heartbeat(first.fence());
  CHECK(a.holds(first.fence()));

  // Fresh heartbeat, but its process is gone: taken over.
  const Claim second = b.claim_run(record("k"), 60, false, [](const RunRecord&) { return false; });
  REQUIRE(second.run_id == first.run_id);
  CHECK(second.token == 2);
  CHECK_FALSE(a.holds(first.fence()));
  CHECK(b.holds(second.fence()));
  b.append_steps(second.fence(), {{0, 0, 1.0, 0.5, 0.1, 1.6, 1.0}, {1, 0, 0.9, 0.6, 0.1, 1.7, 1.0}});
  b.add_eval(second.fence(), {0, 2, "test", 0.4, 0.9, NAN, true});
  b.add_metrics(second.fence(), {{0, "test", "acc", 0.9}});
  b.set_layers(second.fence(), {{0, "w", 10}});
  b.append_layer_alphas(second.fence(), {{1, 0, 1.7}});
  b.finish_run(second.fence(), outcome("finished", "", 0.9, 0.4, 0.95, 2, 3.0));
  CHECK_FALSE(b.holds(second.fence()));  // finished: no longer running

  const auto before = row_counts(b.database());
  const auto result = *b.run(second.run_id);
  const std::string lost = "run " + std::to_string(first.run_id) + ": claim lost: taken over by another process";
  const Fence old = first.fence();
  CHECK_THROWS_WITH(a.heartbeat(old), lost);
  CHECK_THROWS_WITH(a.set_checkpoint(old, dir.file("old.pt"), 0, 1), lost);
  CHECK_THROWS_WITH(a.add_metrics(old, {{0, "test", "acc", 0.1}}), lost);
  CHECK_THROWS_WITH(a.append_steps(old, {{1, 0, 9.0, 0.0, 0.1, NAN, 1.0}}), lost);  // would clash with b's step 1
  CHECK_THROWS_WITH(a.add_eval(old, {0, 1, "test", 9.0, 0.1, NAN, true}), lost);
  CHECK_THROWS_WITH(a.set_layers(old, {{0, "v", 3}}), lost);
  CHECK_THROWS_WITH(a.append_layer_alphas(old, {{1, 1, 1.2}}), lost);
  CHECK_THROWS_WITH(a.clear_checkpoint(old), lost);
  CHECK_THROWS_AS(
      a.finish_run(old, outcome("failed", "writing results: UNIQUE constraint failed", NAN, NAN, NAN, 1, 1.0)),
      LostClaim);
  CHECK(row_counts(b.database()) == before);
  const auto after = *b.run(second.run_id);
  CHECK(after.status == "finished");
  CHECK(after.error.empty());
  CHECK(after.test_acc == result.test_acc);
  CHECK(after.test_metric == Approx(0.9));
  CHECK(after.steps == 2);
  CHECK(after.heartbeat_at == result.heartbeat_at);
  CHECK(after.checkpoint.empty());
  CHECK(b.evals(second.run_id)[0].acc == Approx(0.9));
  CHECK(b.layers(second.run_id)[0].name == "w");
}

TEST_CASE("fencing: a stale claim is taken over with a new token; the holder's own writes pass", "[storage]") {
  TempDir dir("fence-stale");
  Store s(dir.file("htga.db"));
  const Claim c1 = s.claim_run(record("k"), 60, false);
  CHECK(s.claim_run(record("k"), 60, false).run_id == 0);  // fresh heartbeat: someone else's
  s.set_checkpoint(c1.fence(), dir.file("e0.pt"), 0, 5);
  s.finish_run(c1.fence(), outcome("interrupted", "signal", 0.5, 0.7, 0.6, 5, 1.0));
  const Claim c2 = s.claim_run(record("k"), 60, false);  // interrupted: claimable at once
  CHECK(c2.run_id == c1.run_id);
  CHECK(c2.token == c1.token + 1);
  CHECK_THROWS_AS(s.heartbeat(c1.fence()), LostClaim);
  s.heartbeat(c2.fence());
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  const Claim c3 = s.claim_run(record("k"), /*stale_after_s=*/0.01, false);  // stale heartbeat
  CHECK(c3.token == c2.token + 1);
  CHECK_FALSE(s.holds(c2.fence()));
  CHECK(s.holds(c3.fence()));
  // A new cell's first claim: token 1.
  CHECK(s.claim_run(record("other"), 60, false).token == 1);
}

TEST_CASE("fencing: clear_checkpoint after finish by the holder; not after a new claim", "[storage]") {
  TempDir dir("fence-ckpt");
  Store s(dir.file("htga.db"));
  const Claim c = s.claim_run(record("k"), 60, true);
  s.set_checkpoint(c.fence(), dir.file("k-e0.pt"), 0, 10);
  CHECK(s.run(c.run_id)->checkpoint == dir.file("k-e0.pt"));
  s.finish_run(c.fence(), outcome("finished", "", 0.8, 0.3, 0.9, 20, 2.0));
  s.clear_checkpoint(c.fence());  // the file was deleted after the result was stored
  auto r = s.run(c.run_id);
  CHECK(r->checkpoint.empty());
  CHECK(r->checkpoint_epoch == -1);
  CHECK(r->status == "finished");

  const Claim d = s.claim_run(record("d"), 60, true);
  s.set_checkpoint(d.run_id, dir.file("d-e0.pt"), 0, 10);
  s.clear_checkpoint(d.run_id);
  CHECK(s.run(d.run_id)->checkpoint.empty());
}

TEST_CASE("claims never take a finished or diverged cell: a result stored since stands", "[storage]") {
  TempDir dir("claim-done");
  Store s(dir.file("htga.db"));
  for (const char* status : {"finished", "diverged"}) {
    INFO(status);
    const std::string key = std::string("k-") + status;
    const Claim c = s.claim_run(record(key), 60, true);
    s.append_steps(c.fence(), {{0, 0, 1.0, 0.5, 0.1, 1.5, 1.0}});
    s.finish_run(c.fence(), outcome(status, "", 0.8, 0.3, 0.9, 1, 2.0));
    const Claim again = s.claim_run(record(key), 60, true, [](const RunRecord&) { return false; });
    CHECK(again.run_id == 0);
    CHECK(again.done == status);
    auto r = s.run(c.run_id);
    CHECK(r->status == status);
    CHECK(s.claim_run(record(key), 0, false).run_id == 0);  // not even with takeover forced
  }
  CHECK(s.claim_run(record("new"), 60, true).done.empty());
}

// ---- final metrics ----

TEST_CASE("a failed or interrupted run stores no final metrics", "[storage]") {
  TempDir dir("final");
  Store s(dir.file("htga.db"));
  for (const char* status : {"failed", "interrupted"}) {
    const int64_t id = s.begin_run(record(status));
    auto r = outcome(status, "stopped", 0.61, 1.2, 0.7, 7, 3.0);
    r.metric = "mcc";
    r.val_metric = 0.4;
    r.test_metric = 0.35;
    s.finish_run(id, r);
    const auto run = *s.run(id);
    CHECK(run.status == status);
    CHECK(run.error == "stopped");
    CHECK(run.steps == 7);
    CHECK(std::isnan(run.test_acc));
    CHECK(std::isnan(run.test_loss));
    CHECK(std::isnan(run.train_acc));
    CHECK(std::isnan(run.gen_gap));
    CHECK(std::isnan(run.val_metric));
    CHECK(std::isnan(run.test_metric));
    CHECK(run.metric == "mcc");
  }
  const int64_t id = s.begin_run(record("diverged"));
  s.finish_run(id, outcome("diverged", "loss is NaN", NAN, NAN, NAN, 3, 1.0));
  CHECK(s.run(id)->status == "diverged");
  const int64_t fin = s.begin_run(record("finished"));
  s.finish_run(fin, outcome("finished", "", 0.8, 0.5, 0.9, 9, 1.0));
  CHECK(s.run(fin)->test_metric == Approx(0.8));  // acc: the test accuracy
  CHECK(s.run(fin)->gen_gap == Approx(0.1));
}

// ---- schema 5 and recognising htga's files ----

TEST_CASE("a version-4 database is upgraded: claim tokens, application_id, threads, rows kept", "[storage]") {
  TempDir dir("v4");
  const std::string path = dir.file("v4.db");
  make_v4(path);
  {
    Store s(path);
    auto r = s.find_run("k4");
    REQUIRE(r);
    CHECK(r->test_metric == Approx(0.8));
    CHECK(count(s.database(), "SELECT claim_token FROM runs WHERE cell_key = 'k4'") == 0);
    int steps = 0;
    s.for_each_step([&](int64_t, const htga::storage::StepRow&) { ++steps; });
    CHECK(steps == 3);
    CHECK(r->threads == 0);  // unknown for runs of older versions
    auto rec = record("new");
    rec.threads = 3;
    const Claim c = s.claim_run(rec, 60, false);
    CHECK(c.token == 1);
    CHECK(s.find_run("new")->threads == 3);
  }
  CHECK(pragma(path, "user_version") == htga::storage::kSchemaVersion);
  CHECK(pragma(path, "application_id") == htga::storage::kApplicationId);
  Database db(path, Database::Access::kReadOnly);
  Statement q(db, "PRAGMA journal_mode");
  q.step();
  CHECK(q.get_text(0) == "wal");
}

TEST_CASE("a new database carries htga's application_id and the current schema", "[storage]") {
  TempDir dir("new");
  { Store s(dir.file("n.db")); }
  CHECK(pragma(dir.file("n.db"), "user_version") == htga::storage::kSchemaVersion);
  CHECK(pragma(dir.file("n.db"), "application_id") == htga::storage::kApplicationId);
}

TEST_CASE("two processes creating one database at once both open it", "[storage]") {
  TempDir dir("race");
  for (int i = 0; i < 10; ++i) {
    const std::string path = dir.file("r" + std::to_string(i) + ".db");
    std::vector<std::string> errors(4);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&, t] {
        try {
          Store s(path);
          s.claim_run(record("k" + std::to_string(t)), 60, false);
        } catch (const std::exception& e) {
          errors[t] = e.what();
        }
      });
    for (auto& t : threads) t.join();
    for (const auto& e : errors) CHECK(e == "");
    CHECK(Store(path, kRO).runs().size() == 4);
  }
}

TEST_CASE("foreign SQLite files are refused untouched, for read and for write", "[storage]") {
  TempDir dir("foreign2");
  struct Case {
    std::string name, sql, why;
  };
  const std::vector<Case> cases{
      {"runs-table.db", "CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT); PRAGMA user_version = 4;",
       "table runs does not have the columns of htga's schema version 4"},
      {"runs-v1.db", "CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT); PRAGMA user_version = 1;",
       "table runs does not have the columns of htga's schema version 1"},
      {"runs-v0.db", "CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT);", "it has tables but no htga schema"},
      {"runs-v5.db", "CREATE TABLE runs (id INTEGER PRIMARY KEY); PRAGMA user_version = 5;",
       "user_version 5 without htga's application_id"},
      {"runs-v99.db", "CREATE TABLE runs (id INTEGER PRIMARY KEY); PRAGMA user_version = 99;",
       "user_version 99 without htga's application_id"},
      {"other-app.db", "CREATE TABLE t (x); PRAGMA application_id = 1234; PRAGMA user_version = 5;",
       "application_id 0x000004d2"},
      {"other-app-wal.db", "PRAGMA journal_mode=WAL; CREATE TABLE runs (x); PRAGMA application_id = 7;",
       "application_id 0x00000007"},
      {"negative-version.db", "CREATE TABLE runs (x); PRAGMA user_version = -3;", "user_version -3"},
  };
  for (const auto& c : cases) {
    const std::string path = dir.file(c.name);
    {
      Database db(path);
      db.exec(c.sql.c_str());
    }
    const std::string bytes = read_file(path);
    INFO(c.name);
    for (auto mode : {Store::Mode::kReadWrite, kRO}) {
      try {
        Store s(path, mode);
        FAIL("opened " << c.name);
      } catch (const OpenError& e) {
        CHECK_THAT(e.what(), Catch::StartsWith(path + ": not an htga database (") && Catch::Contains(c.why));
      }
      CHECK(read_file(path) == bytes);
    }
  }
  // htga's tables with a column changed: not ours either.
  {
    const std::string path = dir.file("almost.db");
    {
      Database db(path);
      db.exec(kSchemaV4Literal);
      db.exec("ALTER TABLE steps RENAME COLUMN loss TO cost");
    }
    CHECK_THROWS_WITH(Store(path), Catch::Contains("table steps does not have the columns of htga's schema version 4"));
  }
  // Not SQLite at all.
  write_text(dir.file("text.db"), std::string(4096, 'x'));
  for (auto mode : {Store::Mode::kReadWrite, kRO})
    CHECK_THROWS_WITH(Store(dir.file("text.db"), mode),
                      dir.file("text.db") + ": not an htga database (not an SQLite file)");
  CHECK(read_file(dir.file("text.db")) == std::string(4096, 'x'));
}

TEST_CASE("a newer htga database is refused as newer, unchanged", "[storage]") {
  TempDir dir("newer");
  const std::string path = dir.file("n.db");
  { Store s(path); }
  {
    Database db(path);
    db.exec(("PRAGMA user_version = " + std::to_string(htga::storage::kSchemaVersion + 1)).c_str());
  }
  const std::string bytes = read_file(path);
  const std::string newer = "schema version " + std::to_string(htga::storage::kSchemaVersion + 1) + " is newer";
  for (auto mode : {Store::Mode::kReadWrite, kRO}) CHECK_THROWS_WITH(Store(path, mode), Catch::Contains(newer));
  CHECK(read_file(path) == bytes);
}

// ---- read-only opens ----

TEST_CASE("read-only: an empty file or a missing one is refused and stays as it was", "[storage]") {
  TempDir dir("ro-empty");
  write_text(dir.file("zero.db"), "");
  CHECK_THROWS_WITH(Store(dir.file("zero.db"), kRO), dir.file("zero.db") + ": not an htga database (an empty file)");
  CHECK(fs::file_size(dir.file("zero.db")) == 0);
  CHECK_FALSE(fs::exists(dir.file("zero.db-wal")));
  CHECK_THROWS_WITH(Store(dir.file("none.db"), kRO), dir.file("none.db") + ": no such database");
  CHECK_FALSE(fs::exists(dir.file("none.db")));
  {
    Database db(dir.file("blank.db"));  // an SQLite file without tables
    db.exec("PRAGMA user_version = 0");
  }
  CHECK_THROWS_WITH(Store(dir.file("blank.db"), kRO), dir.file("blank.db") + ": not an htga database (no htga tables)");
  // A write open makes an empty file a database (htga run).
  { Store s(dir.file("zero.db")); }
  CHECK(Store(dir.file("zero.db"), kRO).runs().empty());
}

TEST_CASE("read-only: reads without writing, migrating or switching the journal mode", "[storage]") {
  TempDir dir("ro");
  SECTION("a current database") {
    const std::string path = dir.file("cur.db");
    make_current(path, 2);
    const std::string bytes = read_file(path);
    Store s(path, kRO);
    CHECK(s.mode() == kRO);
    CHECK(s.runs().size() == 2);
    CHECK_THROWS(s.begin_run(record("x")));
    CHECK_THROWS(s.heartbeat(1));
    CHECK(s.runs().size() == 2);
    CHECK(read_file(path) == bytes);
  }
  SECTION("a version-4 database is read as it is") {
    const std::string path = dir.file("v4.db");
    make_v4(path);
    const std::string bytes = read_file(path);
    {
      Store s(path, kRO);
      auto runs = s.runs();
      REQUIRE(runs.size() == 1);
      CHECK(runs[0].test_metric == Approx(0.8));
      CHECK(s.evals(runs[0].id).size() == 1);
    }
    CHECK(read_file(path) == bytes);
    CHECK(pragma(path, "user_version") == 4);
    CHECK_FALSE(fs::exists(path + "-wal"));  // journal mode DELETE kept
  }
  SECTION("a version-1 database is read through a temporary copy, the file unchanged") {
    const std::string path = dir.file("v1.db");
    {
      Database db(path);
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
        PRAGMA user_version = 1;)sql");
    }
    const std::string bytes = read_file(path);
    std::string copy;
    {
      Store s(path, kRO);
      CHECK(s.path() == path);  // messages name the file, not the copy
      copy = s.database().uri();
      auto r = s.find_run("k");
      REQUIRE(r);
      CHECK(r->test_metric == Approx(0.8));  // the migration's values
      CHECK(r->metric == "acc");
      int steps = 0;
      s.for_each_step([&](int64_t, const htga::storage::StepRow&) { ++steps; });
      CHECK(steps == 1);
      CHECK(copy.find("htga-read-") != std::string::npos);
    }
    CHECK(read_file(path) == bytes);
    CHECK(pragma(path, "user_version") == 1);
    CHECK_FALSE(fs::exists(copy.substr(std::string("file://").size())));  // the copy is gone
  }
}

TEST_CASE("read-only: a WAL database in a folder that cannot be written", "[storage]") {
  TempDir dir("ro-folder");
  const std::string folder = dir.file("db");
  fs::create_directories(folder);
  const std::string path = folder + "/htga.db";
  make_current(path, 3);
  REQUIRE_FALSE(fs::exists(path + "-wal"));  // closed cleanly: the WAL folded in and removed
  const std::string bytes = read_file(path);

  SECTION("no -wal file: read as immutable") {
    CHECK(in_read_only_folder(folder, [&] {
            Store s(path, kRO);
            return s.runs().size() == 3 && s.database().uri().find("immutable=1") != std::string::npos;
          }) == 0);
    CHECK(read_file(path) == bytes);
    CHECK_FALSE(fs::exists(path + "-wal"));
    CHECK_FALSE(fs::exists(path + "-shm"));
  }
  SECTION("a writer holds it open (-wal and -shm exist): its latest commits are read") {
    Store writer(path);
    writer.begin_run(record("uncheckpointed"));
    REQUIRE(fs::exists(path + "-wal"));
    CHECK(in_read_only_folder(folder, [&] {
            Store s(path, kRO);
            return s.runs().size() == 4 && s.database().uri().find("immutable") == std::string::npos;
          }) == 0);
  }
  SECTION("a write open there fails as bad input, the file unchanged") {
    CHECK(in_read_only_folder(folder, [&] {
            try {
              Store s(path);
              return false;
            } catch (const OpenError& e) {
              return std::string(e.what()).find(path + ": cannot open the database") == 0;
            }
          }) == 0);
    CHECK(read_file(path) == bytes);
  }
}

TEST_CASE("a read-only file: read opens work, a write open is bad input", "[storage]") {
  TempDir dir("ro-file");
  const std::string folder = dir.file("db");
  fs::create_directories(folder);
  const std::string path = folder + "/htga.db";
  make_current(path, 2);
  const std::string bytes = read_file(path);
  CHECK(with_read_only_file(path, [&] { return Store(path, kRO).runs().size() == 2; }) == 0);
  CHECK(with_read_only_file(path, [&] {
          try {
            Store s(path);
            return false;
          } catch (const OpenError& e) {
            return std::string(e.what()) == path + ": cannot write the database: the file is read-only";
          }
        }) == 0);
  CHECK(read_file(path) == bytes);
}

// ---- paths ----

TEST_CASE("bad database paths are refused before anything is opened", "[storage]") {
  TempDir dir("paths");
  using htga::storage::check_database_path;
  CHECK_THROWS_WITH(check_database_path(""), Catch::Contains("the path is empty"));
  CHECK_THROWS_WITH(check_database_path(":memory:"), Catch::StartsWith(":memory:: not a database file"));
  CHECK_THROWS_WITH(check_database_path(dir.str()), dir.str() + ": is a folder, not a database file");
  CHECK_THROWS_WITH(check_database_path("/dev/null"), "/dev/null: not a regular file (a database must be a file)");
  CHECK_THROWS_WITH(check_database_path(dir.file("sub/")), Catch::Contains("names a folder"));
  CHECK_NOTHROW(check_database_path(dir.file("new.db")));
  write_text(dir.file("x.db"), "");
  fs::create_symlink(dir.file("x.db"), dir.file("link.db"));
  CHECK_NOTHROW(check_database_path(dir.file("link.db")));
  for (auto mode : {Store::Mode::kReadWrite, kRO}) {
    CHECK_THROWS_AS(Store(":memory:", mode), OpenError);
    CHECK_THROWS_AS(Store("", mode), OpenError);
    CHECK_THROWS_AS(Store("/dev/null", mode), OpenError);
    CHECK_THROWS_AS(Store(dir.str(), mode), OpenError);
  }
  CHECK_FALSE(fs::exists(":memory:"));
}

TEST_CASE("an output path that is a database or one of its files is refused", "[storage]") {
  TempDir dir("outpath");
  using htga::storage::check_output_path;
  const std::string db = dir.file("results/htga.db");
  make_current(db, 1);
  const std::string rel = fs::relative(db).string();
  fs::create_symlink(db, dir.file("link.db"));
  fs::create_hard_link(db, dir.file("hard.db"));
  for (const std::string& out :
       {db, dir.file("results/./htga.db"), dir.file("results/../results/htga.db"), rel, "./" + rel, dir.file("link.db"),
        dir.file("hard.db"), db + "-wal", db + "-shm", db + "-journal", dir.file("results/../results/htga.db-wal")}) {
    INFO(out);
    CHECK_THROWS_AS(check_output_path(out, {db}), OpenError);
  }
  // The database named through a symlink: its files are beside the real one.
  CHECK_THROWS_AS(check_output_path(db + "-wal", {dir.file("link.db")}), OpenError);
  CHECK_THROWS_WITH(check_output_path(db, {db}),
                    db + ": is the database " + db + " itself; choose another output path");
  CHECK_NOTHROW(check_output_path(dir.file("results/steps.csv"), {db}));
  CHECK_NOTHROW(check_output_path(dir.file("results/htga.db.csv"), {db}));
}

// ---- merge ----

TEST_CASE("merge never changes its inputs and refuses with no output left behind", "[storage]") {
  TempDir dir("merge2");
  const std::string a = dir.file("a.db"), v4 = dir.file("v4.db"), out = dir.file("out/merged.db");
  make_current(a, 2, "a");
  make_v4(v4);
  const std::string a_bytes = read_file(a), v4_bytes = read_file(v4);

  auto stats = htga::storage::merge_into(out, {a, v4});
  REQUIRE(stats.size() == 2);
  CHECK(stats[0].added == 2);
  CHECK(stats[1].added == 1);
  CHECK(read_file(a) == a_bytes);
  CHECK(read_file(v4) == v4_bytes);
  CHECK(pragma(v4, "user_version") == 4);
  CHECK_FALSE(fs::exists(out + ".tmp-" + std::to_string(::getpid())));
  {
    Store s(out, kRO);
    CHECK(s.runs().size() == 3);
    CHECK(count(s.database(), "SELECT count(*) FROM steps") == 2 * 2 + 3);
    CHECK(count(s.database(), "SELECT max(claim_token) FROM runs WHERE cell_key = 'k4'") == 0);
  }
  // Again into the existing output: everything already there.
  stats = htga::storage::merge_into(out, {a, v4});
  CHECK(stats[0].identical == 2);
  CHECK(stats[1].identical == 1);

  // Refused merges: nothing created, nothing changed.
  const std::string fresh = dir.file("fresh/out.db");
  write_text(dir.file("foreign.db"), "");
  {
    Database db(dir.file("foreign.db"));
    db.exec("CREATE TABLE runs (x)");
  }
  const std::string conflicting = dir.file("c.db");
  {
    Store s(conflicting);
    const int64_t id = s.begin_run(record("a0"));
    s.finish_run(id, outcome("finished", "", 0.1, 0.6, 0.75, 2, 1.0));  // another result for a0
  }
  const std::string out_bytes = read_file(out);
  for (const std::vector<std::string>& inputs : std::vector<std::vector<std::string>>{
           {a, dir.file("foreign.db")}, {a, dir.file("none.db")}, {a, conflicting}, {a, "/dev/null"}}) {
    CHECK_THROWS_AS(htga::storage::merge_into(fresh, inputs), OpenError);
    CHECK_FALSE(fs::exists(fresh));
    CHECK_THROWS_AS(htga::storage::merge_into(out, inputs), OpenError);
    CHECK(read_file(out) == out_bytes);
  }
  CHECK_FALSE(fs::exists(dir.file("fresh")));  // not even its folder
  CHECK(read_file(a) == a_bytes);
  // The output among the inputs, however spelled.
  CHECK_THROWS_WITH(htga::storage::merge_into(a, {dir.file("./a.db")}),
                    Catch::Contains("is the output database itself"));
  CHECK_THROWS_WITH(htga::storage::merge_into(a + "-wal", {a}), Catch::Contains("the output database is a file of"));
  CHECK(read_file(a) == a_bytes);
}

// ---- damaged rows ----

TEST_CASE("a run with a damaged config is named and left out; the others are read", "[storage]") {
  TempDir dir("damaged");
  const std::string path = dir.file("d.db");
  make_current(path, 3);
  {
    Database db(path);
    db.exec("UPDATE runs SET config = '{\"seed\": 1, oops' WHERE cell_key = 'k1'");
    db.exec("UPDATE runs SET config = '[1, 2]' WHERE cell_key = 'k2'");
  }
  Store s(path, kRO);
  std::vector<std::pair<int64_t, std::string>> damaged;
  const auto runs = htga::storage::select_runs(s, {}, [&](const RunRecord& r, const std::string& why) {
    damaged.push_back({r.id, why});
  });
  REQUIRE(runs.size() == 1);
  CHECK(runs[0].cell_key == "k0");
  REQUIRE(damaged.size() == 2);
  CHECK(damaged[0].first == 2);
  CHECK_THAT(damaged[0].second, Catch::StartsWith("its stored config is not valid JSON (parse error"));
  CHECK(damaged[1].second == "its stored config is not a JSON object (array)");
  CHECK(htga::storage::select_runs(s, {}).size() == 3);  // the two-argument form filters only
  RunRecord bad_utf8;
  bad_utf8.config_json = "{\"a\": \"\xff\"}";
  CHECK_FALSE(htga::storage::config_problem(bad_utf8).empty());
}

// The run lifecycle (issue 7): the writer thread, claims and heartbeats, checkpoints and resume,
// signals, SIGKILL at any point, --jobs, --shard and merge.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "cli/commands.h"
#include "cli/progress.h"
#include "experiments/runner.h"
#include "storage/merge.h"
#include "storage/writer.h"
#include "test_util.h"

extern char** environ;

using htga::storage::Store;
using htga::test::spawn_htga;
using htga::test::TempDir;
using htga::test::wait_exit;
using htga::test::write_text;

namespace {

htga::storage::RunRecord record(const std::string& key, int64_t seed = 0) {
  htga::storage::RunRecord r;
  r.cell_key = key;
  r.grid = "g";
  r.config_json = "{}";
  r.dataset = "d";
  r.model = "m";
  r.optimizer = "sgd";
  r.seed = seed;
  r.device = "cpu";
  return r;
}

std::vector<htga::storage::StepRow> steps(int64_t from, int64_t to, int64_t per_epoch) {
  std::vector<htga::storage::StepRow> out;
  for (int64_t s = from; s < to; ++s) {
    htga::storage::StepRow r;
    r.step = s;
    r.epoch = s / per_epoch;
    r.loss = 1.0 / (1 + s);
    out.push_back(r);
  }
  return out;
}

int64_t count(Store& store, const std::string& sql) {
  htga::storage::Statement q(store.database(), sql.c_str());
  q.step();
  return q.get_int(0);
}

}  // namespace

TEST_CASE("the writer runs jobs in order, bounds its queue and reports a failed job", "[lifecycle]") {
  TempDir dir("writer");
  htga::storage::Writer w(std::make_unique<Store>(dir.file("w.db")), 2);
  const int64_t id = w.call([](Store& s) { return s.begin_run(record("k")); });
  for (int i = 0; i < 20; ++i) {
    auto rows = steps(i * 10, i * 10 + 10, 100);
    w.post([id, rows](Store& s) { s.append_steps(id, rows); });
    CHECK(w.queued() <= 2);
  }
  CHECK(w.call([](Store& s) { return count(s, "SELECT count(*) FROM steps"); }) == 200);
  // A duplicate (run, step) violates the key: the job fails, the next post or sync says so.
  w.post([id](Store& s) { s.append_steps(id, steps(5, 6, 100)); });
  CHECK_THROWS_WITH(w.sync(), Catch::Contains("UNIQUE constraint failed"));
  w.sync();  // reported once
  CHECK(w.call([](Store& s) { return count(s, "SELECT count(*) FROM steps"); }) == 200);
}

TEST_CASE("claims: a live run is left alone, a stale one taken over, a checkpoint resumed", "[lifecycle]") {
  TempDir dir("claim");
  Store store(dir.file("c.db"));
  auto first = store.claim_run(record("k"), 60, true);
  REQUIRE(first.run_id > 0);
  CHECK_FALSE(first.resumed);
  store.append_steps(first.run_id, steps(0, 25, 10));
  store.add_eval(first.run_id, {0, 10, "test", 1.0, 0.5, NAN, false});
  store.add_eval(first.run_id, {1, 20, "test", 0.9, 0.6, NAN, false});
  store.add_metrics(first.run_id, {{0, "test", "mcc", 0.1}, {1, "test", "mcc", 0.2}});
  const std::string ckpt = dir.file("k-e0.pt");
  write_text(ckpt, "x");
  store.set_checkpoint(first.run_id, ckpt, 0, 10);

  // Heartbeat fresh: another process holds it.
  CHECK(store.claim_run(record("k"), 60, true).run_id == 0);
  // Stale (threshold below the heartbeat's age): taken over and resumed after epoch 0.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto again = store.claim_run(record("k"), 0.01, true);
  CHECK(again.run_id == first.run_id);
  CHECK(again.resumed);
  CHECK(again.from_epoch == 1);
  CHECK(again.from_step == 10);
  CHECK(again.checkpoint == ckpt);
  CHECK(count(store, "SELECT count(*) FROM steps") == 10);  // steps 0..9 kept, the rest replaced
  CHECK(count(store, "SELECT max(step) FROM steps") == 9);
  CHECK(count(store, "SELECT count(*) FROM evals") == 1);    // epoch 0's
  CHECK(count(store, "SELECT count(*) FROM metrics") == 1);  // epoch 0's
  auto r = store.run(again.run_id);
  REQUIRE(r);
  CHECK(r->status == "running");
  CHECK(r->steps == 10);
  CHECK(r->checkpoint_epoch == 0);

  // Without the checkpoint file, everything starts over.
  store.finish_run(again.run_id, {"interrupted", "signal", NAN, NAN, NAN, 12, 1.0});
  std::filesystem::remove(ckpt);
  auto fresh = store.claim_run(record("k"), 60, true);
  CHECK_FALSE(fresh.resumed);
  CHECK(count(store, "SELECT count(*) FROM steps") == 0);
  CHECK(count(store, "SELECT count(*) FROM evals") == 0);
  CHECK(store.run(fresh.run_id)->checkpoint_epoch == -1);
}

TEST_CASE("merge: shards combine, unfinished runs give way, conflicting results are refused", "[lifecycle]") {
  TempDir dir("merge");
  auto make = [&](const std::string& name, const std::vector<std::tuple<std::string, std::string, double>>& runs) {
    Store s(dir.file(name));
    for (const auto& [key, status, acc] : runs) {
      const int64_t id = s.begin_run(record(key));
      s.append_steps(id, steps(0, 4, 2));
      s.add_eval(id, {1, 4, "test", 0.5, acc, NAN, true});
      s.add_metrics(id, {{1, "test", "acc", acc}});
      s.set_layers(id, {{0, "w", 10}});
      s.append_layer_alphas(id, {{0, 0, 1.5}});
      s.finish_run(id, {status, "", acc, 0.5, NAN, 4, 1.0});
    }
  };
  make("a.db", {{"k1", "finished", 0.8}, {"k2", "failed", NAN}});
  make("b.db", {{"k2", "finished", 0.7}, {"k3", "diverged", NAN}});
  make("c.db", {{"k1", "finished", 0.8}});  // the same result again
  make("d.db", {{"k3", "finished", 0.6}});  // a different result for k3

  Store out(dir.file("out.db"));
  auto stats = htga::storage::merge_databases(out, {dir.file("a.db"), dir.file("b.db"), dir.file("c.db")});
  REQUIRE(stats.size() == 3);
  CHECK(stats[0].added == 2);
  CHECK(stats[1].replaced == 1);  // k2: failed in a, finished in b
  CHECK(stats[1].added == 1);
  CHECK(stats[2].identical == 1);
  std::map<std::string, std::string> status;
  for (const auto& r : out.runs()) status[r.cell_key] = r.status;
  CHECK(status == std::map<std::string, std::string>{{"k1", "finished"}, {"k2", "finished"}, {"k3", "diverged"}});
  CHECK(count(out, "SELECT count(*) FROM steps") == 12);
  CHECK(count(out, "SELECT count(*) FROM evals") == 3);
  CHECK(count(out, "SELECT count(*) FROM metrics") == 3);
  CHECK(count(out, "SELECT count(*) FROM alpha_layers") == 3);
  CHECK(count(out, "SELECT count(*) FROM steps s LEFT JOIN runs r ON r.id = s.run_id WHERE r.id IS NULL") == 0);

  CHECK_THROWS_WITH(htga::storage::merge_databases(out, {dir.file("d.db")}),
                    Catch::Contains("cell k3") && Catch::Contains("conflicts with"));
  CHECK(out.runs().size() == 3);
  CHECK(count(out, "SELECT count(*) FROM steps") == 12);  // nothing written
  CHECK_THROWS_WITH(htga::storage::merge_databases(out, {dir.file("out.db")}), Catch::Contains("output database"));
  CHECK_THROWS_WITH(htga::storage::merge_databases(out, {dir.file("none.db")}), Catch::Contains("no such database"));
}

// ---- the binary, killed and interrupted ----

namespace {

const char* kLifeGrid = R"({
  "name": "life",
  "defaults": {"epochs": 4, "batch_size": 32, "device": "cpu"},
  "datasets": [{"name": "fashion-mnist", "train_size": 1024}],
  "models": [{"name": "mlp", "hidden": [32]}],
  "optimizers": [
    {"name": "sgd-clip", "lr": 0.05, "clip_norm": 1.0},
    {"name": "htga", "lr": 0.05, "alpha0": 1.5, "beta": 1.0, "clip_norm": 1.0, "warmup_steps": 1}
  ],
  "seeds": [0]
})";

/// Steps stored so far (0 while the database or its tables do not exist yet).
int64_t stored_steps(const std::string& db) {
  if (!std::filesystem::exists(db)) return 0;
  try {
    htga::storage::Database d(db);
    htga::storage::Statement q(d, "SELECT count(*) FROM steps");
    return q.step() ? q.get_int(0) : 0;
  } catch (const std::exception&) {
    return 0;
  }
}

/// Waits until `db` holds at least `n` step rows or the process ends; true if it is still running.
bool wait_for_steps(pid_t pid, const std::string& db, int64_t n) {
  for (int i = 0; i < 20000; ++i) {
    if (stored_steps(db) >= n) return true;
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

struct StepKey {
  std::string cell;
  int64_t step;
  bool operator<(const StepKey& o) const { return std::tie(cell, step) < std::tie(o.cell, o.step); }
};

/// Every step's (loss, lr, alpha_hat) and every run's result, by cell key.
struct Snapshot {
  std::map<StepKey, std::tuple<double, double, double>> steps;
  std::map<std::string, std::tuple<std::string, int64_t, double, double>> runs;
};

Snapshot snapshot(const std::string& db) {
  Store s(db);
  Snapshot out;
  std::map<int64_t, std::string> key_of;
  for (const auto& r : s.runs()) {
    key_of[r.id] = r.cell_key;
    out.runs[r.cell_key] = {r.status, r.steps, r.test_acc, r.val_metric};
  }
  s.for_each_step([&](int64_t id, const htga::storage::StepRow& r) {
    out.steps[{key_of[id], r.step}] = {r.loss, r.lr, r.alpha_hat};
  });
  return out;
}

void check_same(const Snapshot& a, const Snapshot& b) {
  REQUIRE(a.runs.size() == b.runs.size());
  for (const auto& [key, r] : a.runs) {
    INFO(key);
    REQUIRE(b.runs.count(key));
    CHECK(std::get<0>(b.runs.at(key)) == std::get<0>(r));
    CHECK(std::get<1>(b.runs.at(key)) == std::get<1>(r));
    CHECK(std::get<2>(b.runs.at(key)) == std::get<2>(r));  // bit for bit
  }
  REQUIRE(a.steps.size() == b.steps.size());
  int differ = 0;
  for (const auto& [k, v] : a.steps) {
    auto it = b.steps.find(k);
    if (it == b.steps.end() || std::get<0>(it->second) != std::get<0>(v) || std::get<1>(it->second) != std::get<1>(v) ||
        !(std::get<2>(it->second) == std::get<2>(v) ||
          (std::isnan(std::get<2>(v)) && std::isnan(std::get<2>(it->second)))))
      ++differ;
  }
  CHECK(differ == 0);
}

}  // namespace

TEST_CASE("SIGKILL at several points, then a re-run: the results of an uninterrupted run", "[lifecycle]") {
  REQUIRE(std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"));
  TempDir dir("kill");
  write_text(dir.file("life.json"), kLifeGrid);
  const std::string ref = dir.file("ref/htga.db"), db = dir.file("killed/htga.db");
  auto args = [&](const std::string& path) {
    return std::vector<std::string>{"run", "grid", dir.file("life.json"), "--db", path, "--flush-every", "4"};
  };
  REQUIRE(wait_exit(spawn_htga(args(ref), dir.file("ref.log"))) == 0);
  const Snapshot want = snapshot(ref);
  REQUIRE(want.steps.size() == 2 * 4 * 32);

  // Killed: while loading, early in the first cell (no checkpoint yet), after a checkpoint,
  // and in the second cell. Each kill may land inside a commit.
  int kills = 0;
  for (int64_t at : {0, 10, 60, 170}) {
    pid_t pid = spawn_htga(args(db), dir.file("killed.log"));
    bool alive = true;
    if (at == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
    else
      alive = wait_for_steps(pid, db, at);
    if (alive && kill(pid, SIGKILL) == 0) ++kills;
    wait_exit(pid);
  }
  CHECK(kills >= 3);
  REQUIRE(wait_exit(spawn_htga(args(db), dir.file("killed.log"))) == 0);

  Store s(db);
  htga::storage::Statement ic(s.database(), "PRAGMA integrity_check");
  REQUIRE(ic.step());
  CHECK(ic.get_text(0) == "ok");
  for (const auto& r : s.runs()) CHECK(r.status == "finished");
  CHECK(count(s, "SELECT count(*) FROM (SELECT run_id, step FROM steps GROUP BY run_id, step HAVING count(*) > 1)") ==
        0);
  check_same(want, snapshot(db));
  // Checkpoints are removed once their runs finish.
  int left = 0;
  if (std::filesystem::exists(dir.file("killed/checkpoints")))
    for (const auto& e : std::filesystem::directory_iterator(dir.file("killed/checkpoints"))) ++left, (void)e;
  CHECK(left == 0);
}

TEST_CASE("SIGINT: the step finishes, the run is marked interrupted, exit 130; a re-run resumes", "[lifecycle]") {
  REQUIRE(std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"));
  TempDir dir("sigint");
  write_text(dir.file("life.json"), kLifeGrid);
  const std::string ref = dir.file("ref.db"), db = dir.file("int.db");
  auto args = [&](const std::string& path) {
    return std::vector<std::string>{"run", "grid", dir.file("life.json"), "--db", path, "--flush-every", "4"};
  };
  REQUIRE(wait_exit(spawn_htga(args(ref), dir.file("ref.log"))) == 0);

  pid_t pid = spawn_htga(args(db), dir.file("int.log"));
  REQUIRE(wait_for_steps(pid, db, 48));  // past the first checkpoint (32 steps per epoch)
  kill(pid, SIGINT);
  CHECK(wait_exit(pid) == 130);
  {
    Store s(db);
    auto runs = s.runs();
    REQUIRE(runs.size() == 1);  // the second cell never started
    CHECK(runs[0].status == "interrupted");
    CHECK(runs[0].error.find("interrupted at step") != std::string::npos);
    CHECK(runs[0].checkpoint_epoch >= 0);
    CHECK(std::filesystem::exists(runs[0].checkpoint));
  }
  CHECK(htga::test::read_file(dir.file("int.log")).find("stopping after the current step") != std::string::npos);

  REQUIRE(wait_exit(spawn_htga(args(db), dir.file("int2.log"))) == 0);
  CHECK(htga::test::read_file(dir.file("int2.log")).find("resuming after epoch") != std::string::npos);
  check_same(snapshot(ref), snapshot(db));
}

TEST_CASE("two signals at once (timeout signals the process, then its group): one stop, no cell left running",
          "[lifecycle]") {
  REQUIRE(std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"));
  TempDir dir("sigtwice");
  write_text(dir.file("life.json"), kLifeGrid);
  const std::string db = dir.file("int.db");
  const pid_t pid =
      spawn_htga({"run", "grid", dir.file("life.json"), "--db", db, "--flush-every", "4"}, dir.file("int.log"));
  REQUIRE(wait_for_steps(pid, db, 8));
  kill(pid, SIGTERM);
  kill(pid, SIGINT);
  CHECK(wait_exit(pid) == 130);
  Store s(db);
  for (const auto& r : s.runs()) {
    INFO(r.cell_key);
    CHECK(r.status == "interrupted");
    CHECK(std::isnan(r.test_acc));  // no final metric of an unfinished run
  }
}

TEST_CASE("--shard splits a grid, merge puts it back together; --jobs 2 trains cells side by side", "[lifecycle]") {
  REQUIRE(std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"));
  TempDir dir("shard");
  write_text(dir.file("g.json"), R"({
    "name": "shards",
    "defaults": {"epochs": 1, "batch_size": 64, "device": "cpu"},
    "datasets": [{"name": "fashion-mnist", "train_size": 256}],
    "models": [{"name": "mlp", "hidden": [16]}],
    "optimizers": [{"name": "sgd-clip", "lr": [0.05, 0.1]}],
    "seeds": [0, 1]
  })");
  htga::experiments::RunOptions o;
  o.grid_path = dir.file("g.json");
  std::ostringstream progress_text;
  htga::cli::LineProgress progress(progress_text);
  o.db_path = dir.file("all.db");
  o.jobs = 2;
  auto all = htga::experiments::run_grid(o, progress);
  CHECK(all.finished == 4);
  o.jobs = 1;
  for (int i = 0; i < 2; ++i) {
    o.shard_index = i;
    o.shard_count = 2;
    o.db_path = dir.file("s" + std::to_string(i) + ".db");
    auto s = htga::experiments::run_grid(o, progress);
    CHECK(s.selected == 2);
    CHECK(s.finished == 2);
  }
  std::ostringstream out;
  CHECK(htga::cli::run_merge(dir.file("merged.db"), {dir.file("s0.db"), dir.file("s1.db")}, out) == 0);
  CHECK(out.str().find("2 added") != std::string::npos);
  Store merged(dir.file("merged.db")), joint(dir.file("all.db"));
  std::map<std::string, double> a, b;
  for (const auto& r : merged.runs()) a[r.cell_key] = r.test_acc;
  for (const auto& r : joint.runs()) b[r.cell_key] = r.test_acc;
  REQUIRE(a.size() == 4);
  REQUIRE(b.size() == 4);
  for (const auto& [k, v] : a) CHECK(b.at(k) == Approx(v).margin(0.02));  // threads per cell differ
  for (const auto& r : joint.runs()) {
    CHECK(r.host != "");
    CHECK(r.git_commit != "");
    CHECK(r.pid > 0);
  }

  o.shard_index = 2;
  CHECK_THROWS_WITH(htga::experiments::run_grid(o, progress), Catch::Contains("--shard 2/2"));
  o.shard_index = 0;
  o.shard_count = 1;
  o.max_cells = 3;
  o.db_path = dir.file("big.db");
  CHECK_THROWS_WITH(htga::experiments::run_grid(o, progress), Catch::Contains("4 cells, more than --max-cells 3"));
  CHECK_FALSE(std::filesystem::exists(dir.file("big.db")));
  o.yes = true;
  CHECK(htga::experiments::run_grid(o, progress).finished == 4);
}

// ---- bad input: exit code 2, one line, the database untouched ----

TEST_CASE("a corpus of bad inputs: exit code 2, one line naming the problem, no change", "[lifecycle]") {
  TempDir dir("badcorpus");
  const std::string db = dir.file("r/htga.db");
  const std::string good = R"({"name": "bad", "defaults": {"epochs": 1, "batch_size": 64, "device": "cpu"},
    "datasets": [{"name": "fashion-mnist", "train_size": 128}], "models": [{"name": "mlp", "hidden": [8]}],
    "optimizers": [{"name": "sgd-clip", "lr": [0.1, 0.2]}], "seeds": [0, 1]})";
  auto with = [&](const std::string& from, const std::string& to) {
    std::string g = good;
    const auto at = g.find(from);
    REQUIRE(at != std::string::npos);
    return g.replace(at, from.size(), to);
  };
  struct Case {
    std::string name, grid, want;
  };
  const std::vector<Case> grids = {
      {"malformed", with("\"seeds\": [0, 1]}", "\"seeds\": [0, 1],}"), "line 3, column"},
      {"type", with("\"epochs\": 1", "\"epochs\": \"one\""), "epochs"},
      {"unknown key", with("\"train_size\"", "\"train_sise\""), "train_sise"},
      {"unknown name", with("\"mlp\"", "\"mlpp\""), "valid: mlp"},
      {"empty list", with("\"seeds\": [0, 1]", "\"seeds\": []"), "seeds"},
      {"zero size", with("\"batch_size\": 64", "\"batch_size\": 0"), "batch_size"},
      {"negative size", with("\"train_size\": 128", "\"train_size\": -5"), "train_size"},
  };
  // An existing database with a finished-looking run: every refusal must leave it byte for byte.
  {
    Store s(db);
    const int64_t id = s.begin_run(record("keep"));
    s.append_steps(id, steps(0, 3, 3));
    s.finish_run(id, {"finished", "", 0.5, 1.0, NAN, 3, 1.0});
  }
  const std::string before = htga::test::read_file(db);
  for (const auto& c : grids) {
    INFO(c.name);
    write_text(dir.file("g.json"), c.grid);
    auto r = htga::test::htga_cmd("run grid " + dir.file("g.json") + " --db " + db, dir);
    INFO(r.out);
    CHECK(r.code == 2);
    CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
    CHECK(r.out.find(dir.file("g.json")) != std::string::npos);
    CHECK(r.out.find(c.want) != std::string::npos);
    CHECK(htga::test::read_file(db) == before);
  }

  write_text(dir.file("g.json"), good);
  auto r = htga::test::htga_cmd("run grid " + dir.file("g.json") + " --db " + db + " --max-cells 3", dir);
  CHECK(r.code == 2);
  CHECK(r.out.find("4 cells, more than --max-cells 3; pass --yes") != std::string::npos);
  CHECK(htga::test::read_file(db) == before);
  for (const std::string& bad : {"--shard 2/2", "--shard x", "--jobs 0"}) {
    r = htga::test::htga_cmd("run grid " + dir.file("g.json") + " --db " + db + " " + bad, dir);
    INFO(bad << ": " << r.out);
    CHECK(r.code == 2);
    CHECK(htga::test::read_file(db) == before);
  }

  // Database paths: below a file (no folder can be made there), not SQLite, newer than htga.
  write_text(dir.file("afile"), "x");
  r = htga::test::htga_cmd("run grid " + dir.file("g.json") + " --db " + dir.file("afile/htga.db"), dir);
  CHECK(r.code == 2);
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
  CHECK(r.out.find("cannot create folder") != std::string::npos);
  if (geteuid() != 0) {  // root writes anywhere
    std::filesystem::create_directories(dir.file("ro"));
    std::filesystem::permissions(dir.file("ro"),
                                 std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
    r = htga::test::htga_cmd("run grid " + dir.file("g.json") + " --db " + dir.file("ro/htga.db"), dir);
    CHECK(r.code == 2);
    CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
    std::filesystem::permissions(dir.file("ro"), std::filesystem::perms::owner_all);
  }
  write_text(dir.file("notdb.db"), std::string(4096, 'z'));
  const std::string junk = htga::test::read_file(dir.file("notdb.db"));
  r = htga::test::htga_cmd("run grid " + dir.file("g.json") + " --db " + dir.file("notdb.db"), dir);
  CHECK(r.code == 2);
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
  CHECK(r.out.find(dir.file("notdb.db")) != std::string::npos);
  CHECK(htga::test::read_file(dir.file("notdb.db")) == junk);
  {
    htga::storage::Database d(dir.file("newer.db"));
    d.exec("CREATE TABLE runs (id INTEGER PRIMARY KEY); PRAGMA user_version = 99; PRAGMA application_id = 1213482817");
  }
  const std::string newer = htga::test::read_file(dir.file("newer.db"));
  r = htga::test::htga_cmd("run grid " + dir.file("g.json") + " --db " + dir.file("newer.db"), dir);
  CHECK(r.code == 2);
  CHECK(r.out.find("newer than this htga") != std::string::npos);
  CHECK(htga::test::read_file(dir.file("newer.db")) == newer);
}

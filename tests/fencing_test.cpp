// Fencing (issue 16): a process that lost its cell to another one writes nothing more, and two
// processes on one grid and database finish every cell exactly once.

#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <thread>

#include "storage/sqlite.h"
#include "storage/store.h"
#include "test_util.h"

using htga::test::read_file;
using htga::test::spawn_htga;
using htga::test::TempDir;
using htga::test::wait_exit;
using htga::test::write_text;

namespace {

const char* kOneCell = R"({
  "name": "fence",
  "defaults": {"epochs": 2, "batch_size": 32, "device": "cpu", "train_eval_size": 256},
  "datasets": [{"name": "fashion-mnist", "train_size": 2048, "val_size": 256}],
  "models": [{"name": "mlp", "hidden": [64]}],
  "optimizers": [{"name": "htga", "lr": 0.05, "warmup_steps": 1}],
  "seeds": [0]
})";

const char* kFourCells = R"({
  "name": "race",
  "defaults": {"epochs": 1, "batch_size": 64, "device": "cpu", "train_eval_size": 256},
  "datasets": [{"name": "fashion-mnist", "train_size": 1024}],
  "models": [{"name": "mlp", "hidden": [32]}],
  "optimizers": [{"name": "sgd-clip", "lr": [0.05, 0.1]}, {"name": "htga", "lr": [0.05, 0.1]}],
  "seeds": [0]
})";

int64_t scalar(const std::string& db, const std::string& sql) {
  htga::storage::Store s(db, htga::storage::Store::Mode::kReadOnly);
  htga::storage::Statement q(s.database(), sql.c_str());
  return q.step() ? q.get_int(0) : -1;
}

/// Waits until the database holds a `running` run (claimed by a process); false after 60 s.
bool wait_for_claim(const std::string& db) {
  for (int i = 0; i < 6000; ++i) {
    try {
      if (std::filesystem::exists(db) && scalar(db, "SELECT count(*) FROM runs WHERE status = 'running'") > 0)
        return true;
    } catch (const std::exception&) {
      // not created yet
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

}  // namespace

TEST_CASE("fencing: a paused process whose cell was taken over and finished writes nothing more", "[lifecycle]") {
  REQUIRE(std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"));
  TempDir dir("fence");
  write_text(dir.file("g.json"), kOneCell);
  const std::string db = dir.file("htga.db");
  const std::vector<std::string> args{"run",         "grid", dir.file("g.json"), "--db", db, "--flush-every", "4",
                                      "--heartbeat", "0.2",  "--stale-after",    "1"};
  const pid_t a = spawn_htga(args, dir.file("a.log"));
  struct Resume {  // the paused process is never left stopped, whatever happens below
    pid_t pid;
    ~Resume() { kill(pid, SIGCONT); }
  } resume{a};
  REQUIRE(wait_for_claim(db));
  REQUIRE(kill(a, SIGSTOP) == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // its heartbeat goes stale

  // Another process takes the cell over and finishes it.
  REQUIRE(wait_exit(spawn_htga(args, dir.file("b.log"))) == 0);
  INFO(read_file(dir.file("b.log")));
  REQUIRE(scalar(db, "SELECT count(*) FROM runs WHERE status = 'finished'") == 1);
  const int64_t steps = scalar(db, "SELECT count(*) FROM steps");
  const int64_t evals = scalar(db, "SELECT count(*) FROM evals");
  const int64_t token = scalar(db, "SELECT claim_token FROM runs");
  CHECK(steps == 2 * 2048 / 32);

  // The first wakes up, finds its claim lost, stops that cell quietly: the result stands.
  kill(a, SIGCONT);
  CHECK(wait_exit(a) == 0);
  const std::string log = read_file(dir.file("a.log"));
  INFO(log);
  CHECK(log.find("taken over by another process") != std::string::npos);
  CHECK(scalar(db, "SELECT count(*) FROM runs WHERE status = 'finished'") == 1);
  CHECK(scalar(db, "SELECT count(*) FROM steps") == steps);
  CHECK(scalar(db, "SELECT count(*) FROM evals") == evals);
  CHECK(scalar(db, "SELECT claim_token FROM runs") == token);
  CHECK(scalar(db, "SELECT count(*) FROM runs WHERE checkpoint IS NOT NULL") == 0);
  // No checkpoint file of either process is left behind.
  std::error_code ec;
  CHECK((!std::filesystem::exists(dir.file("checkpoints")) || std::filesystem::is_empty(dir.file("checkpoints"))));
}

TEST_CASE("fencing: two processes started on one grid and database finish every cell exactly once", "[lifecycle]") {
  REQUIRE(std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"));
  TempDir dir("race");
  write_text(dir.file("g.json"), kFourCells);
  const std::string db = dir.file("htga.db");
  const std::vector<std::string> args{"run", "grid", dir.file("g.json"), "--db", db, "--flush-every", "4"};
  const pid_t a = spawn_htga(args, dir.file("a.log"));
  const pid_t b = spawn_htga(args, dir.file("b.log"));
  const int ra = wait_exit(a), rb = wait_exit(b);
  const std::string la = read_file(dir.file("a.log")), lb = read_file(dir.file("b.log"));
  INFO(la << "\n----\n" << lb);
  CHECK(ra == 0);
  CHECK(rb == 0);
  // Every cell finished once, by one of them; the other skipped it or left it to its holder.
  auto trained = [](const std::string& log) {
    int n = 0;
    for (size_t at = log.find(": test acc"); at != std::string::npos; at = log.find(": test acc", at + 1)) ++n;
    return n;
  };
  CHECK(trained(la) + trained(lb) == 4);
  CHECK(scalar(db, "SELECT count(*) FROM runs") == 4);
  CHECK(scalar(db, "SELECT count(*) FROM runs WHERE status = 'finished'") == 4);
  CHECK(scalar(db, "SELECT count(*) FROM steps") == 4 * 1024 / 64);
  CHECK(scalar(db, "SELECT max(claim_token) FROM runs") == 1);  // nobody claimed a cell twice
}

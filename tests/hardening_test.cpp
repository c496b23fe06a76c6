// Issue 16 through the htga binary, the storage side: databases that are not ours, empty or
// read-only; bad --db values; output paths that would destroy a database; merge that never
// changes its inputs; a damaged run among good ones. Each case checks the exit code, the message
// naming the file, and that every file that must not change is byte for byte the same. None of
// them trains: the databases are made through the storage API.

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include "storage/store.h"
#include "test_util.h"

using htga::storage::Database;
using htga::storage::Store;
using htga::test::htga_cmd;
using htga::test::read_file;
using htga::test::TempDir;
using htga::test::write_text;
namespace fs = std::filesystem;

namespace {

int lines_of(const std::string& text) { return static_cast<int>(std::count(text.begin(), text.end(), '\n')); }

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

/// htga run with `args` from the folder `cwd` (relative paths are relative to it); the log goes
/// to `logs`.
htga::test::Result htga_in(const std::string& cwd, const std::string& args, const TempDir& logs) {
  const std::string log = logs.file("cmd-in.log");
  const int status =
      std::system(("cd " + cwd + " && " + std::string(HTGA_BINARY) + " " + args + " > " + log + " 2>&1").c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(log)};
}

/// A database of this htga with `n` finished runs (ids 1..n).
void make_db(const std::string& path, int n, const std::string& prefix = "k") {
  Store s(path);
  for (int i = 0; i < n; ++i) {
    htga::storage::RunRecord r;
    r.cell_key = prefix + std::to_string(i);
    r.grid = "g";
    r.config_json =
        R"({"dataset":{"name":"fashion-mnist"},"model":{"name":"mlp"},"optimizer":{"name":"sgd-clip","lr":0.1},"seed":)" +
        std::to_string(i) + "}";
    r.dataset = "fashion-mnist";
    r.model = "mlp";
    r.optimizer = "sgd-clip";
    r.seed = i;
    r.device = "cpu";
    const int64_t id = s.begin_run(r);
    s.append_steps(id, {{0, 0, 2.0, 0.1, 0.1, NAN, 1.0}, {1, 0, 1.8, 0.2, 0.1, NAN, 1.0}});
    s.add_eval(id, {0, 2, "test", 0.6, 0.7, NAN, true});
    htga::storage::RunResult res;
    res.status = "finished";
    res.test_acc = 0.7;
    res.test_loss = 0.6;
    res.steps = 2;
    res.metric = "acc";
    s.finish_run(id, res);
  }
}

/// A SQLite file of another program: a table named runs, user_version 4, no application_id.
void make_foreign(const std::string& path) {
  Database db(path);
  db.exec("CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO runs (name) VALUES ('x');");
  db.exec("PRAGMA user_version = 4");
}

/// The read commands on `db`, as command lines.
std::vector<std::string> read_commands(const std::string& db, const TempDir& dir) {
  return {"runs --db " + db,
          "runs --format json --db " + db,
          "show 1 --db " + db,
          "export runs --db " + db + " --out " + dir.file("x.csv"),
          "export steps --db " + db + " --out -",
          "report --db " + db};
}

}  // namespace

TEST_CASE("hardening: a foreign SQLite file is refused by every command, byte for byte unchanged", "[cli]") {
  TempDir dir("hard-foreign");
  const std::string db = dir.file("other.db");
  make_foreign(db);
  const std::string bytes = read_file(db);
  std::vector<std::string> cmds = read_commands(db, dir);
  cmds.push_back("merge " + dir.file("merged.db") + " " + db);  // as an input
  cmds.push_back("merge " + db + " " + dir.file("a.db"));       // as the output
  make_db(dir.file("a.db"), 1);
  for (const auto& cmd : cmds) {
    const auto r = htga_cmd(cmd, dir);
    INFO(cmd << "\n" << r.out);
    CHECK(r.code == 2);
    CHECK(lines_of(r.out) == 1);
    CHECK(has(r.out, db + ": not an htga database"));
    CHECK(read_file(db) == bytes);
  }
  CHECK_FALSE(fs::exists(dir.file("merged.db")));
  CHECK_FALSE(fs::exists(dir.file("x.csv")));
}

TEST_CASE("hardening: a zero-byte file is not turned into a database by a read command", "[cli]") {
  TempDir dir("hard-zero");
  const std::string db = dir.file("zero.db");
  write_text(db, "");
  for (const auto& cmd : read_commands(db, dir)) {
    const auto r = htga_cmd(cmd, dir);
    INFO(cmd << "\n" << r.out);
    CHECK(r.code == 2);
    CHECK(lines_of(r.out) == 1);
    CHECK(has(r.out, db + ": not an htga database (an empty file)"));
    CHECK(fs::file_size(db) == 0);
    CHECK_FALSE(fs::exists(db + "-wal"));
  }
}

TEST_CASE("hardening: bad --db values are bad input naming the path, for every command", "[cli]") {
  TempDir dir("hard-db");
  fs::create_directories(dir.file("folder"));
  make_db(dir.file("a.db"), 1);
  // Run from the test folder, so that a ':memory:' file, if one were made, would be seen.
  for (const std::string& bad : {std::string(":memory:"), dir.file("folder"), std::string("/dev/null")}) {
    for (const auto& cmd : read_commands(bad, dir)) {
      const auto r = htga_in(dir.str(), cmd, dir);
      INFO(cmd << "\n" << r.out);
      CHECK(r.code == 2);
      CHECK(lines_of(r.out) == 1);
      CHECK(has(r.out, bad + ": "));
    }
    for (const std::string& cmd : {"merge " + bad + " " + dir.file("a.db"), "merge " + dir.file("m.db") + " " + bad}) {
      const auto r = htga_in(dir.str(), cmd, dir);
      INFO(cmd << "\n" << r.out);
      CHECK(r.code == 2);
      CHECK(lines_of(r.out) == 1);
      CHECK(has(r.out, bad + ": "));
    }
  }
  CHECK_FALSE(fs::exists(dir.file(":memory:")));
  CHECK_FALSE(fs::exists(dir.file("m.db")));
  for (const std::string& cmd : {std::string("runs --db ''"), std::string("export runs --db '' --out -")}) {
    const auto r = htga_cmd(cmd, dir);
    INFO(cmd << "\n" << r.out);
    CHECK(r.code == 2);
  }
}

TEST_CASE("hardening: an output path that is the database or one of its files is refused", "[cli]") {
  TempDir dir("hard-out");
  const std::string db = dir.file("results/htga.db");
  make_db(db, 2);
  fs::create_symlink(db, dir.file("link.db"));
  const std::string bytes = read_file(db);
  const std::vector<std::string> outs{db,
                                      dir.file("results/./htga.db"),
                                      dir.file("results/../results/htga.db"),
                                      dir.file("link.db"),
                                      db + "-wal",
                                      db + "-shm",
                                      db + "-journal"};
  for (const auto& out : outs) {
    for (const char* what : {"runs", "steps", "summary"}) {
      const std::string cmd = std::string("export ") + what + " --db " + db + " --out " + out;
      const auto r = htga_cmd(cmd, dir);
      INFO(cmd << "\n" << r.out);
      CHECK(r.code == 2);
      CHECK(lines_of(r.out) == 1);
      CHECK(has(r.out, out + ": is the "));
      CHECK(read_file(db) == bytes);
    }
  }
  // Relative spellings, from the folder above the database.
  for (const std::string& cmd : {std::string("export runs --db results/htga.db --out ./results/htga.db"),
                                 std::string("export runs --db ./results/../results/htga.db --out results/htga.db"),
                                 std::string("export runs --db results/htga.db --out results/htga.db-wal"),
                                 std::string("export runs --db link.db --out results/htga.db-shm")}) {
    const auto r = htga_in(dir.str(), cmd, dir);
    INFO(cmd << "\n" << r.out);
    CHECK(r.code == 2);
    CHECK(lines_of(r.out) == 1);
    CHECK(read_file(db) == bytes);
  }
  const auto ok = htga_in(dir.str(), "export runs --db results/htga.db --out results/runs.csv", dir);
  INFO(ok.out);
  CHECK(ok.code == 0);
  CHECK(lines_of(read_file(dir.file("results/runs.csv"))) == 1 + 2);
  CHECK(read_file(db) == bytes);
}

TEST_CASE("hardening: merge never changes its inputs; a refused merge leaves no output", "[cli]") {
  TempDir dir("hard-merge");
  const std::string a = dir.file("a.db"), b = dir.file("b.db");
  make_db(a, 2, "a");
  make_db(b, 1, "b");
  // b as an older htga wrote it: schema 4, no claim_token, no application_id.
  {
    Database db(b);
    db.exec(
        "ALTER TABLE runs DROP COLUMN threads; ALTER TABLE runs DROP COLUMN claim_token; "
        "PRAGMA application_id = 0; PRAGMA user_version = 4;");
  }
  const std::string a_bytes = read_file(a), b_bytes = read_file(b);

  auto r = htga_cmd("merge " + dir.file("m.db") + " " + a + " " + b, dir);
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(read_file(a) == a_bytes);
  CHECK(read_file(b) == b_bytes);
  CHECK(Store(dir.file("m.db"), Store::Mode::kReadOnly).runs().size() == 3);
  {
    Database db(b, Database::Access::kReadOnly);
    htga::storage::Statement q(db, "PRAGMA user_version");
    q.step();
    CHECK(q.get_int(0) == 4);
  }

  make_foreign(dir.file("foreign.db"));
  for (const std::string& cmd : {"merge " + dir.file("new.db") + " " + a + " " + dir.file("foreign.db"),
                                 "merge " + dir.file("new.db") + " " + a + " " + dir.file("none.db"),
                                 "merge " + a + " " + dir.file("./a.db"), "merge " + a + "-wal " + a}) {
    r = htga_cmd(cmd, dir);
    INFO(cmd << "\n" << r.out);
    CHECK(r.code == 2);
    CHECK(lines_of(r.out) == 1);
    CHECK_FALSE(fs::exists(dir.file("new.db")));
    CHECK(read_file(a) == a_bytes);
  }
}

TEST_CASE("hardening: read commands never switch the journal mode or migrate", "[cli]") {
  TempDir dir("hard-journal");
  const std::string db = dir.file("v4.db");
  make_db(db, 2);
  {
    Database d(db);
    d.exec("PRAGMA journal_mode = DELETE");
    d.exec(
        "ALTER TABLE runs DROP COLUMN threads; ALTER TABLE runs DROP COLUMN claim_token; "
        "PRAGMA application_id = 0; PRAGMA user_version = 4;");
  }
  const std::string bytes = read_file(db);
  for (const auto& cmd : {"runs --db " + db, "show 1 --db " + db, "export evals --db " + db + " --out -",
                          "report --db " + db + " --compare sgd-clip"}) {
    const auto r = htga_cmd(cmd, dir);
    INFO(cmd << "\n" << r.out);
    if (cmd.rfind("report", 0) != 0) CHECK(r.code == 0);  // report: whatever it says of one optimizer
    CHECK(read_file(db) == bytes);
    CHECK_FALSE(fs::exists(db + "-wal"));
  }
}

TEST_CASE("hardening: one damaged run is named and skipped; the others are read", "[cli]") {
  TempDir dir("hard-damaged");
  const std::string db = dir.file("d.db");
  make_db(db, 3);
  {
    Database d(db);
    d.exec("UPDATE runs SET config = '{\"dataset\": oops' WHERE id = 2");
  }
  auto r = htga_cmd("runs --db " + db, dir);
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(has(r.out, "run 2 skipped: its stored config is not valid JSON"));
  CHECK(has(r.out, "2 runs: 2 finished"));
  r = htga_cmd("runs --format json --db " + db, dir);
  CHECK(r.code == 0);
  CHECK(has(r.out, "run 2 skipped"));
  r = htga_cmd("export runs --db " + db + " --out " + dir.file("runs.csv"), dir);
  CHECK(r.code == 0);
  CHECK(has(r.out, "run 2 skipped"));
  CHECK(lines_of(read_file(dir.file("runs.csv"))) == 1 + 2);
  r = htga_cmd("export steps --with-config --db " + db + " --out " + dir.file("steps.csv"), dir);
  CHECK(r.code == 0);
  CHECK(lines_of(read_file(dir.file("steps.csv"))) == 1 + 2 * 2);
  r = htga_cmd("show 2 --db " + db, dir);
  CHECK(r.code == 0);
  CHECK(has(r.out, "config (damaged: its stored config is not valid JSON"));
  CHECK(has(r.out, "{\"dataset\": oops"));
  r = htga_cmd("show 1 --db " + db, dir);
  CHECK(r.code == 0);
  CHECK_FALSE(has(r.out, "warning"));
}

TEST_CASE("hardening: an interrupted run shows no final test metric", "[cli]") {
  TempDir dir("hard-interrupted");
  const std::string db = dir.file("i.db");
  {
    Store s(db);
    htga::storage::RunRecord rec;
    rec.cell_key = "k";
    rec.grid = "g";
    rec.config_json = R"({"optimizer":{"name":"sgd-clip","lr":0.1}})";
    rec.dataset = "fashion-mnist";
    rec.model = "mlp";
    rec.optimizer = "sgd-clip";
    const auto claim = s.claim_run(rec, 60, false);
    htga::storage::RunResult res;
    res.status = "interrupted";
    res.error = "interrupted at step 7";
    res.test_acc = 0.42;  // a mid-training evaluation
    res.test_metric = 0.42;
    res.steps = 7;
    s.finish_run(claim.fence(), res);
  }
  const auto r = htga_cmd("show 1 --json --db " + db, dir);
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(has(r.out, "\"test_metric\": null"));
  CHECK(has(r.out, "\"test_acc\": null"));
}

TEST_CASE("hardening: a database in a folder that cannot be written is read", "[cli]") {
  TempDir dir("hard-ro");
  fs::create_directories(dir.file("ro"));
  const std::string db = dir.file("ro/htga.db");
  make_db(db, 2);
  const std::string bytes = read_file(db);
  // As root (whom permissions do not stop) the commands run as nobody; otherwise the folder is
  // made read-only.
  const bool root = ::geteuid() == 0;
  std::string as = "";
  if (root) {
    as = "setpriv --reuid=65534 --regid=65534 --clear-groups ";
    TempDir probe("hard-ro-probe");
    const int rc = std::system((as + std::string(HTGA_BINARY) + " --version > " + probe.file("log") + " 2>&1").c_str());
    if (rc != 0) {
      WARN("cannot run htga as nobody here (setpriv missing or the binary unreachable): skipped");
      return;
    }
  } else {
    fs::permissions(dir.file("ro"), fs::perms::owner_read | fs::perms::owner_exec);
  }
  TempDir logs("hard-ro-logs");
  for (const auto& cmd : {"runs --db " + db, "show 1 --db " + db, "export runs --db " + db + " --out -"}) {
    const int status = std::system((as + HTGA_BINARY + " " + cmd + " > " + logs.file("log") + " 2>&1").c_str());
    const std::string out = read_file(logs.file("log"));
    INFO(cmd << "\n" << out);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    if (cmd.rfind("runs", 0) == 0) CHECK(has(out, "2 runs: 2 finished"));
  }
  if (!root) fs::permissions(dir.file("ro"), fs::perms::owner_all);
  CHECK(read_file(db) == bytes);
  CHECK_FALSE(fs::exists(db + "-wal"));
  CHECK_FALSE(fs::exists(db + "-shm"));
}

TEST_CASE("hardening: export writes files only, through symlinks; devices and pipes are refused", "[cli]") {
  TempDir dir("hard-out");
  const std::string db = dir.file("htga.db");
  make_db(db, 2);
  REQUIRE(mkfifo(dir.file("fifo").c_str(), 0644) == 0);
  auto r = htga_cmd("export runs --db " + db + " --out " + dir.file("fifo"), dir);
  CHECK(r.code == 2);
  CHECK(has(r.out, dir.file("fifo") + ": not a regular file"));
  CHECK(fs::is_fifo(dir.file("fifo")));
  write_text(dir.file("target.csv"), "old\n");
  fs::create_symlink(dir.file("target.csv"), dir.file("link.csv"));
  r = htga_cmd("export runs --db " + db + " --out " + dir.file("link.csv"), dir);
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(fs::is_symlink(dir.file("link.csv")));  // the link stays; its target holds the CSV
  CHECK(lines_of(read_file(dir.file("target.csv"))) == 3);
}

TEST_CASE("hardening: names that match nothing, unknown commands and huge ids are refused", "[cli]") {
  TempDir dir("hard-names");
  const std::string db = dir.file("htga.db");
  make_db(db, 2);
  for (const std::string& cmd : {"runs --dataset nope", "export runs --out - --model nope",
                                 "export steps --out - --grid nope", "export runs --out - --run 99"}) {
    auto r = htga_cmd(cmd + " --db " + db, dir);
    INFO(cmd << ": " << r.out);
    CHECK(r.code == 2);
    CHECK(lines_of(r.out) == 1);
    CHECK((has(r.out, "no run has it; present:") || has(r.out, "no such run")));
  }
  auto r = htga_cmd("runs --status failed --db " + db, dir);  // a status is no name: an empty answer
  CHECK(r.code == 0);
  r = htga_cmd("bogus", dir);
  CHECK(r.code == 2);
  CHECK(has(r.out, "unknown command \"bogus\" for htga; valid: run, report"));
  for (const std::string& cmd : {"show 99999999999999999999", "show -3", "export runs --out - --run 1e30"}) {
    r = htga_cmd(cmd + " --db " + db, dir);
    INFO(cmd << ": " << r.out);
    CHECK(r.code == 2);
    CHECK((has(r.out, "out of range") || has(r.out, "not an integer")));
    CHECK_FALSE(has(r.out, "no run with id"));
  }
}

TEST_CASE("hardening: numbers a grid cannot hold and models that cannot be built write nothing", "[cli]") {
  REQUIRE(fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"));
  TempDir dir("hard-grid");
  auto grid = [&](const std::string& model, const std::string& lr) {
    write_text(dir.file("g.json"), R"({"name": "g", "defaults": {"device": "cpu"},
      "datasets": [{"name": "fashion-mnist", "train_size": 100}], "models": [)" +
                                       model + R"(], "optimizers": [{"name": "sgd", "lr": )" + lr + "}]}");
  };
  const std::string db = dir.file("out/htga.db");
  for (const auto& [model, lr, what] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {R"({"name": "mlp"})", "1e400", "not valid JSON: number overflow"},
           {R"({"name": "mlp", "hidden": [10000000000]})", "0.1", "/models/0/hidden/0: must be <="},
           {R"({"name": "cnn", "kernel": 4})", "0.1", "model cnn: cnn: kernel must be odd"},
           {R"({"name": "lenet5"})", "0.1", ""}}) {
    grid(model, lr);
    auto r = htga_cmd("run grid " + dir.file("g.json") + " --db " + db + " -q", dir);
    INFO(model << " lr " << lr << ": " << r.out);
    if (what.empty()) {  // the control: a good grid trains
      CHECK(r.code == 0);
      continue;
    }
    CHECK(r.code == 2);
    CHECK(lines_of(r.out) == 1);
    CHECK(has(r.out, dir.file("g.json")));
    CHECK(has(r.out, what));
    CHECK_FALSE(fs::exists(dir.file("out")));  // no database, no cache, no checkpoint folder
  }
}

TEST_CASE("hardening: links, loops, folders and pipes as files; nested unknown commands; keys given twice", "[cli]") {
  TempDir dir("hard-links");
  const std::string db = dir.file("htga.db");
  make_db(db, 2);
  fs::create_symlink(dir.file("missing.csv"), dir.file("dangling.csv"));
  auto r = htga_cmd("export runs --db " + db + " --out " + dir.file("dangling.csv"), dir);
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(fs::is_symlink(dir.file("dangling.csv")));  // written through: the target now exists
  CHECK(lines_of(read_file(dir.file("missing.csv"))) == 3);
  fs::create_symlink(dir.file("loop"), dir.file("loop"));
  for (const std::string& cmd :
       {"export runs --db " + db + " --out " + dir.file("loop"), "merge " + dir.file("loop") + " " + db}) {
    r = htga_cmd(cmd, dir);
    INFO(cmd << ": " << r.out);
    CHECK(r.code == 2);
    CHECK(lines_of(r.out) == 1);
    CHECK(fs::is_symlink(dir.file("loop")));
  }
  for (const std::string& cmd : {"run bogus", "export Runs"}) {
    r = htga_cmd(cmd, dir);
    CHECK(r.code == 2);
    CHECK(has(r.out, "unknown command \"" + cmd.substr(cmd.find(' ') + 1) + "\""));
  }
  REQUIRE(mkfifo(dir.file("values").c_str(), 0644) == 0);
  r = htga_cmd("estimate " + dir.file("values"), dir);  // would block reading a pipe
  CHECK(r.code == 2);
  CHECK(has(r.out, "not a regular file"));
  r = htga_cmd("run grid " + dir.str(), dir);
  CHECK(r.code == 2);
  CHECK(has(r.out, "not a grid file"));
  write_text(dir.file("dup.json"), R"({"name": "g", "defaults": {"epochs": 1, "epochs": 5},
    "datasets": [{"name": "fashion-mnist"}], "models": [{"name": "mlp"}], "optimizers": [{"name": "sgd"}]})");
  r = htga_cmd("run grid " + dir.file("dup.json") + " --db " + dir.file("x/htga.db"), dir);
  CHECK(r.code == 2);
  CHECK(has(r.out, "key \"epochs\" given twice"));
  write_text(dir.file("seed.json"), R"({"name": "g", "seeds": [9223372036854775808],
    "datasets": [{"name": "fashion-mnist"}], "models": [{"name": "mlp"}], "optimizers": [{"name": "sgd"}]})");
  r = htga_cmd("run grid " + dir.file("seed.json") + " --db " + dir.file("x/htga.db"), dir);
  CHECK(r.code == 2);
  CHECK(has(r.out, "/seeds/0: must be <= 9223372036854775807"));
  CHECK_FALSE(fs::exists(dir.file("x")));
}

#include "storage/store.h"

#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <thread>

#include "storage/paths.h"
#include "storage/query.h"

namespace htga::storage {

namespace {

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

// Version 1. Steps are keyed (run_id, step) in a WITHOUT ROWID table: the rows are stored in key
// order, which is the order every query reads them in.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE runs (
  id INTEGER PRIMARY KEY,
  cell_key TEXT NOT NULL UNIQUE,
  grid TEXT NOT NULL,
  config TEXT NOT NULL,
  status TEXT NOT NULL,
  error TEXT,
  dataset TEXT NOT NULL,
  model TEXT NOT NULL,
  optimizer TEXT NOT NULL,
  seed INTEGER NOT NULL,
  device TEXT,
  started_at REAL,
  finished_at REAL,
  test_acc REAL,
  test_loss REAL,
  train_time_s REAL,
  steps INTEGER,
  htga_version TEXT,
  torch_version TEXT
);
CREATE INDEX runs_group ON runs(dataset, model, optimizer);
CREATE TABLE steps (
  run_id INTEGER NOT NULL REFERENCES runs(id),
  step INTEGER NOT NULL,
  epoch INTEGER NOT NULL,
  loss REAL,
  train_acc REAL,
  lr REAL,
  alpha_hat REAL,
  grad_norm REAL,
  PRIMARY KEY (run_id, step)
) WITHOUT ROWID;
CREATE TABLE evals (
  run_id INTEGER NOT NULL REFERENCES runs(id),
  epoch INTEGER NOT NULL,
  step INTEGER NOT NULL,
  split TEXT NOT NULL,
  loss REAL,
  acc REAL,
  PRIMARY KEY (run_id, epoch, split)
) WITHOUT ROWID;
)sql";

// Version 2: train accuracy and generalization gap per run, top-5 and a final flag per
// evaluation, per-layer alpha_hat with the layer names kept once per run.
constexpr const char* kMigrateV1toV2 = R"sql(
ALTER TABLE runs ADD COLUMN train_acc REAL;
ALTER TABLE runs ADD COLUMN gen_gap REAL;
ALTER TABLE evals ADD COLUMN top5 REAL;
ALTER TABLE evals ADD COLUMN final INTEGER NOT NULL DEFAULT 0;
CREATE TABLE layers (
  run_id INTEGER NOT NULL REFERENCES runs(id),
  layer INTEGER NOT NULL,
  name TEXT NOT NULL,
  numel INTEGER NOT NULL,
  PRIMARY KEY (run_id, layer)
) WITHOUT ROWID;
CREATE TABLE alpha_layers (
  run_id INTEGER NOT NULL REFERENCES runs(id),
  step INTEGER NOT NULL,
  layer INTEGER NOT NULL,
  alpha_hat REAL,
  PRIMARY KEY (run_id, step, layer)
) WITHOUT ROWID;
)sql";

// Version 3: the HTGA controller's state per step, and the clipping factor.
constexpr const char* kMigrateV2toV3 = R"sql(
ALTER TABLE steps ADD COLUMN alpha_smooth REAL;
ALTER TABLE steps ADD COLUMN phase INTEGER;
ALTER TABLE steps ADD COLUMN clip_coef REAL;
)sql";

// Version 4: liveness and reproducibility per run, checkpoints, the task's main metric, and
// named metrics per evaluation (GLUE's MCC or F1, SQuAD's EM, perplexity, ...).
constexpr const char* kMigrateV3toV4 = R"sql(
ALTER TABLE runs ADD COLUMN git_commit TEXT;
ALTER TABLE runs ADD COLUMN host TEXT;
ALTER TABLE runs ADD COLUMN pid INTEGER;
ALTER TABLE runs ADD COLUMN heartbeat_at REAL;
ALTER TABLE runs ADD COLUMN checkpoint TEXT;
ALTER TABLE runs ADD COLUMN checkpoint_epoch INTEGER;
ALTER TABLE runs ADD COLUMN checkpoint_step INTEGER;
ALTER TABLE runs ADD COLUMN metric TEXT;
ALTER TABLE runs ADD COLUMN val_metric REAL;
ALTER TABLE runs ADD COLUMN test_metric REAL;
UPDATE runs SET metric = 'acc', test_metric = test_acc;
UPDATE runs SET val_metric = (SELECT acc FROM evals e WHERE e.run_id = runs.id AND e.split = 'val' AND e.final = 1);
CREATE INDEX runs_status ON runs(status);
CREATE TABLE metrics (
  run_id INTEGER NOT NULL REFERENCES runs(id),
  epoch INTEGER NOT NULL,
  split TEXT NOT NULL,
  name TEXT NOT NULL,
  value REAL,
  PRIMARY KEY (run_id, epoch, split, name)
) WITHOUT ROWID;
)sql";

// Version 5: fencing. Each claim of a run increments its token; a write of the run is allowed
// only to the holder of the current token (see Store::hold). The application_id that marks the
// file as htga's is written by migrate() with the version.
constexpr const char* kMigrateV4toV5 = R"sql(
ALTER TABLE runs ADD COLUMN claim_token INTEGER NOT NULL DEFAULT 0;
)sql";

// Version 6: the intra-op threads a run trained with.
constexpr const char* kMigrateV5toV6 = R"sql(
ALTER TABLE runs ADD COLUMN threads INTEGER;
)sql";

// kUpgrades[v] brings a database from version v to v + 1 (from 0: the first schema).
constexpr const char* kUpgrades[] = {kSchemaV1,      kMigrateV1toV2, kMigrateV2toV3,
                                     kMigrateV3toV4, kMigrateV4toV5, kMigrateV5toV6};
static_assert(sizeof(kUpgrades) / sizeof(kUpgrades[0]) == kSchemaVersion, "one upgrade per schema version");

/// Each table with its column names, in the order the tables were created.
using Shape = std::vector<std::pair<std::string, std::vector<std::string>>>;

Shape shape_of(Database& db) {
  Shape shape;
  Statement t(db,
              "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
              "ORDER BY rowid");
  Statement c(db, "SELECT name FROM pragma_table_info(?1)");
  while (t.step()) {
    shape.push_back({t.get_text(0), {}});
    c.bind(1, shape.back().first);
    while (c.step()) shape.back().second.push_back(c.get_text(0));
    c.reset();
  }
  return shape;
}

/// The tables and columns of each schema version as htga wrote it, built by running the same
/// upgrade scripts on an in-memory database: index = version.
const std::vector<Shape>& htga_shapes() {
  static const std::vector<Shape> shapes = [] {
    std::vector<Shape> out(kSchemaVersion + 1);
    Database mem(":memory:");
    for (int v = 0; v < kSchemaVersion; ++v) {
      mem.exec(kUpgrades[v]);
      out[v + 1] = shape_of(mem);
    }
    return out;
  }();
  return shapes;
}

std::string not_ours(const Database& db, const std::string& why) {
  return db.path() + ": not an htga database (" + why + ")";
}

std::string newer(const Database& db, int version) {
  return db.path() + ": database schema version " + std::to_string(version) + " is newer than this htga understands (" +
         std::to_string(kSchemaVersion) + "); upgrade htga";
}

/// Recognises an htga database by reading it only: returns its schema version (0: an empty
/// database, ready for the schema), or throws OpenError for a newer, foreign or non-SQLite file.
int recognise(Database& db) {
  try {
    ReadTransaction snapshot(db);  // another process may be creating or upgrading the schema
    int64_t app = 0, version = 0, objects = 0;
    {
      Statement q(db, "PRAGMA application_id");
      if (q.step()) app = q.get_int(0);
    }
    {
      Statement q(db, "PRAGMA user_version");
      if (q.step()) version = q.get_int(0);
    }
    {
      Statement q(db, "SELECT count(*) FROM sqlite_master");
      if (q.step()) objects = q.get_int(0);
    }
    if (app != 0 && app != kApplicationId) {
      char hex[16];
      std::snprintf(hex, sizeof hex, "0x%08x", static_cast<unsigned>(app));
      throw OpenError(not_ours(db, std::string("an SQLite file of another program: application_id ") + hex));
    }
    if (app == kApplicationId && version > kSchemaVersion) throw OpenError(newer(db, static_cast<int>(version)));
    if (version == 0) {
      // A version-0 file must be empty: never write our schema into someone else's database.
      if (objects != 0) throw OpenError(not_ours(db, "it has tables but no htga schema"));
      if (app != 0) throw OpenError(not_ours(db, "htga's application_id but no schema version"));
      return 0;
    }
    // Before schema 5 there was no application_id: such a file is htga's only if its version
    // is one htga wrote without it and its tables are that version's (extra tables allowed).
    if (app == 0 && (version < 1 || version > 4))
      throw OpenError(not_ours(db, "user_version " + std::to_string(version) + " without htga's application_id"));
    if (version < 1) throw OpenError(not_ours(db, "user_version " + std::to_string(version)));
    const Shape& want = htga_shapes()[version];
    std::map<std::string, std::vector<std::string>> have;
    for (auto& [table, cols] : shape_of(db)) have[table] = std::move(cols);
    for (const auto& [table, cols] : want) {
      auto it = have.find(table);
      if (it == have.end())
        throw OpenError(not_ours(db, "no table " + table + " of htga's schema version " + std::to_string(version)));
      if (it->second != cols)
        throw OpenError(not_ours(
            db, "table " + table + " does not have the columns of htga's schema version " + std::to_string(version)));
    }
    return static_cast<int>(version);
  } catch (const Error& e) {
    const int code = e.code() & 0xff;
    if (code == SQLITE_NOTADB) throw OpenError(not_ours(db, "not an SQLite file"));
    // A file or folder this process may not write (a WAL reader needs the -shm file), or
    // cannot read: bad input, named.
    if (code == SQLITE_READONLY || code == SQLITE_CANTOPEN || code == SQLITE_PERM || code == SQLITE_AUTH)
      throw OpenError(db.path() + ": cannot open the database: " + sqlite3_errstr(e.code()) +
                      " (check the permissions of the file, its folder and its -wal/-shm files)");
    throw;
  }
}

/// The connection a Store opens, after the checks that need no connection.
Database open_database(const std::string& path, Store::Mode mode) {
  namespace fs = std::filesystem;
  check_database_path(path);
  if (mode == Store::Mode::kReadWrite) return Database(path, Database::Access::kReadWrite);
  std::error_code ec;
  if (!fs::exists(path, ec)) throw OpenError(path + ": no such database");
  if (fs::file_size(path, ec) == 0 && !ec) throw OpenError(path + ": not an htga database (an empty file)");
  // A WAL reader needs the -shm file, which SQLite cannot create in a read-only folder; without
  // a -wal file there is no writer and nothing in a WAL to read, so the file alone is the whole
  // database and immutable=1 reads it without any -shm. access() also says EROFS for a read-only
  // mount, whoever we are.
  // Through a symlink SQLite keeps -wal and -shm beside the file it points to.
  fs::path real = fs::canonical(path, ec);
  if (ec) real = fs::absolute(path);
  const bool folder_writable = ::access(real.parent_path().c_str(), W_OK) == 0;
  const bool has_wal = fs::exists(real.string() + "-wal", ec);
  // A rollback journal left by a crash must be rolled back first: immutable=1 would ignore it
  // and read a half-written file, mode=ro stops with an error instead.
  const bool has_journal = fs::exists(real.string() + "-journal", ec);
  return Database(
      path, !folder_writable && !has_wal && !has_journal ? Database::Access::kImmutable : Database::Access::kReadOnly);
}

}  // namespace

Store::TempFile::~TempFile() {
  if (path.empty()) return;
  std::error_code ec;
  for (const char* suffix : {"", "-journal", "-wal", "-shm"}) std::filesystem::remove(path + suffix, ec);
}

Store::Store(const std::string& path, Mode mode) : mode_(mode), db_(open_database(path, mode)) {
  // Refuse a newer or foreign file before anything (the journal mode included) changes it.
  const int version = recognise(db_);
  if (mode == Mode::kReadOnly) {
    if (version == 0) throw OpenError(not_ours(db_, "no htga tables"));
    version_ = version;
    if (version >= kOldestReadableSchema) return;
    // An old schema is read through a migrated copy: the queries need its newer columns, and
    // the file itself must not change. The copy is made with SQLite's backup API (a consistent
    // snapshot, whatever the journal mode).
    std::string tmpl = (std::filesystem::temp_directory_path() / "htga-read-XXXXXX").string();
    const int fd = ::mkstemp(tmpl.data());
    if (fd < 0) throw Error(path + ": cannot make a temporary copy to read its old schema: " + std::strerror(errno), 0);
    ::close(fd);
    snapshot_.path = tmpl;
    Database copy(tmpl, Database::Access::kReadWrite, path);
    sqlite3_backup* b = sqlite3_backup_init(copy.handle(), "main", db_.handle(), "main");
    if (!b) copy.check(sqlite3_errcode(copy.handle()), "copy for reading");
    const int rc = sqlite3_backup_step(b, -1);
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE) copy.check(rc, "copy for reading");
    db_ = std::move(copy);
    migrate();
    version_ = kSchemaVersion;
    return;
  }
  // SQLite opens a file it may not write read-only without a word; every write would fail later.
  if (sqlite3_db_readonly(db_.handle(), "main") == 1)
    throw OpenError(db_.path() + ": cannot write the database: the file is read-only");
  // Switching to WAL needs the file to itself, and SQLite answers BUSY at once, without its busy
  // handler, when another connection is opening it too (two runs started together): retry.
  for (int attempt = 0;; ++attempt) {
    try {
      db_.exec("PRAGMA journal_mode=WAL");
      break;
    } catch (const Error& e) {
      if ((e.code() & 0xff) != SQLITE_BUSY || attempt >= 500) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  db_.exec("PRAGMA synchronous=NORMAL");
  db_.exec("PRAGMA foreign_keys=ON");
  migrate();
  version_ = kSchemaVersion;
}

void Store::migrate() {
  auto read_version = [&] {
    Statement q(db_, "PRAGMA user_version");
    return q.step() ? static_cast<int>(q.get_int(0)) : 0;
  };
  if (read_version() == kSchemaVersion) return;
  Transaction tx(db_);
  // Read again under the write lock: another process may have created or upgraded the schema
  // since (two runs started at once on a new database).
  int version = read_version();
  if (version > kSchemaVersion) throw OpenError(newer(db_, version));
  if (version == kSchemaVersion) return;
  if (version == 0) {
    Statement q(db_, "SELECT count(*) FROM sqlite_master");
    if (q.step() && q.get_int(0) != 0) throw OpenError(not_ours(db_, "it has tables but no htga schema"));
  }
  // Each step upgrades by one version, all inside the one transaction: a failure leaves the
  // file as it was.
  for (; version < kSchemaVersion; ++version) db_.exec(kUpgrades[version]);
  db_.exec(("PRAGMA application_id=" + std::to_string(kApplicationId)).c_str());
  db_.exec(("PRAGMA user_version=" + std::to_string(kSchemaVersion)).c_str());
  tx.commit();
}

namespace {
constexpr const char* kRunColumns =
    "id, cell_key, grid, config, status, error, dataset, model, optimizer, seed, device, "
    "started_at, finished_at, test_acc, test_loss, train_time_s, steps, htga_version, "
    "torch_version, train_acc, gen_gap, git_commit, host, pid, heartbeat_at, checkpoint, checkpoint_epoch, "
    "checkpoint_step, metric, val_metric, test_metric";

/// The SELECT of a run's columns. Read-only opens of schemas 4 and 5 are read in place (no
/// migrated copy): the columns they lack are read as NULL.
std::string select_runs(int version) {
  return std::string("SELECT ") + kRunColumns + (version >= 6 ? ", threads" : ", NULL") + " FROM runs";
}

RunRecord read_run(const Statement& q) {
  RunRecord r;
  r.id = q.get_int(0);
  r.cell_key = q.get_text(1);
  r.grid = q.get_text(2);
  r.config_json = q.get_text(3);
  r.status = q.get_text(4);
  r.error = q.get_text(5);
  r.dataset = q.get_text(6);
  r.model = q.get_text(7);
  r.optimizer = q.get_text(8);
  r.seed = q.get_int(9);
  r.device = q.get_text(10);
  r.started_at = q.get_double(11);
  r.finished_at = q.get_double(12);
  r.test_acc = q.get_double(13);
  r.test_loss = q.get_double(14);
  r.train_time_s = q.get_double(15);
  r.steps = q.get_int(16);
  r.htga_version = q.get_text(17);
  r.torch_version = q.get_text(18);
  r.train_acc = q.get_double(19);
  r.gen_gap = q.get_double(20);
  r.git_commit = q.get_text(21);
  r.host = q.get_text(22);
  r.pid = q.get_int(23);
  r.heartbeat_at = q.get_double(24);
  r.checkpoint = q.get_text(25);
  r.checkpoint_epoch = q.is_null(26) ? -1 : q.get_int(26);
  r.checkpoint_step = q.get_int(27);
  r.metric = q.is_null(28) ? "acc" : q.get_text(28);
  r.val_metric = q.get_double(29);
  r.test_metric = q.get_double(30);
  r.threads = q.is_null(31) ? 0 : q.get_int(31);
  return r;
}
}  // namespace

std::optional<RunRecord> Store::find_run(const std::string& cell_key) {
  Statement q(db_, (select_runs(version_) + " WHERE cell_key = ?1").c_str());
  q.bind(1, cell_key);
  if (!q.step()) return std::nullopt;
  return read_run(q);
}

int64_t Store::begin_run(const RunRecord& run) { return claim_run(run, 0, false).run_id; }

namespace {

/// Deletes a run's rows from step `step0` and epoch `epoch0` on (all of them from 0), and its
/// layers unless `keep_layers`: rows are replaced, never duplicated.
void drop_rows_after(Database& db, int64_t run_id, int64_t step0, int64_t epoch0, bool keep_layers) {
  // Rows after the checkpoint (all rows without one) are replaced, never duplicated.
  for (const char* sql : {"DELETE FROM steps WHERE run_id = ?1 AND step >= ?2",
                          "DELETE FROM alpha_layers WHERE run_id = ?1 AND step >= ?2"}) {
    Statement d(db, sql);
    d.bind(1, run_id);
    d.bind(2, step0);
    d.run();
  }
  for (const char* sql : {"DELETE FROM evals WHERE run_id = ?1 AND (epoch >= ?2 OR split = 'train')",
                          "DELETE FROM metrics WHERE run_id = ?1 AND (epoch >= ?2 OR split = 'train')"}) {
    Statement d(db, sql);
    d.bind(1, run_id);
    d.bind(2, epoch0);
    d.run();
  }
  {  // the final flag belongs to the last epoch, which is yet to come
    Statement d(db, "UPDATE evals SET final = 0 WHERE run_id = ?1");
    d.bind(1, run_id);
    d.run();
  }
  if (!keep_layers) {
    Statement d(db, "DELETE FROM layers WHERE run_id = ?1");
    d.bind(1, run_id);
    d.run();
  }
}

/// Marks a run `running` again for a new claim (a new token), keeping its checkpoint when resumed.
void restart_run(Database& db, int64_t run_id, const RunRecord& run, double now, int64_t step0, bool resumed) {
  Statement u(db,
              "UPDATE runs SET status = 'running', error = NULL, device = ?2, started_at = ?3, "
              "finished_at = NULL, test_acc = NULL, test_loss = NULL, train_time_s = NULL, train_acc = NULL, "
              "gen_gap = NULL, steps = ?7, htga_version = ?4, torch_version = ?5, grid = ?6, git_commit = ?8, "
              "host = ?9, pid = ?10, heartbeat_at = ?3, val_metric = NULL, test_metric = NULL, threads = ?12, "
              "checkpoint = CASE WHEN ?11 THEN checkpoint ELSE NULL END, "
              "checkpoint_epoch = CASE WHEN ?11 THEN checkpoint_epoch ELSE NULL END, "
              "checkpoint_step = CASE WHEN ?11 THEN checkpoint_step ELSE NULL END, "
              "claim_token = claim_token + 1 WHERE id = ?1");
  u.bind(1, run_id);
  u.bind(2, run.device);
  u.bind(3, now);
  u.bind(4, run.htga_version);
  u.bind(5, run.torch_version);
  u.bind(6, run.grid);
  u.bind(7, step0);
  u.bind(8, run.git_commit);
  u.bind(9, run.host);
  u.bind(10, run.pid);
  u.bind(11, static_cast<int64_t>(resumed));
  if (run.threads > 0) u.bind(12, run.threads);  // unbound: NULL (unknown)
  u.run();
}

/// Inserts the run of a cell seen for the first time (token 1); returns its id.
int64_t insert_run(Database& db, const RunRecord& run, double now) {
  Statement ins(db,
                "INSERT INTO runs (cell_key, grid, config, status, dataset, model, optimizer, "
                "seed, device, started_at, steps, htga_version, torch_version, git_commit, host, pid, "
                "heartbeat_at, metric, claim_token, threads) "
                "VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10, ?11, ?12, ?13, ?14, ?9, ?15, 1, ?16)");
  ins.bind(1, run.cell_key);
  ins.bind(2, run.grid);
  ins.bind(3, run.config_json);
  ins.bind(4, run.dataset);
  ins.bind(5, run.model);
  ins.bind(6, run.optimizer);
  ins.bind(7, run.seed);
  ins.bind(8, run.device);
  ins.bind(9, now);
  ins.bind(10, run.htga_version);
  ins.bind(11, run.torch_version);
  ins.bind(12, run.git_commit);
  ins.bind(13, run.host);
  ins.bind(14, run.pid);
  ins.bind(15, run.metric.empty() ? std::string("acc") : run.metric);
  if (run.threads > 0) ins.bind(16, run.threads);
  ins.run();
  return db.last_insert_rowid();
}

}  // namespace

Claim Store::claim_run(const RunRecord& run, double stale_after_s, bool resume,
                       const std::function<bool(const RunRecord&)>& holder_alive) {
  namespace fs = std::filesystem;
  Transaction tx(db_);  // BEGIN IMMEDIATE: two processes cannot both claim the cell
  Claim claim;
  const double now = now_seconds();
  std::optional<RunRecord> old;
  {
    Statement q(db_, (select_runs(version_) + " WHERE cell_key = ?1").c_str());
    q.bind(1, run.cell_key);
    if (q.step()) old = read_run(q);
  }
  if (old && is_done(old->status)) {
    claim.done = old->status;
    return claim;
  }
  if (old) {
    // NULL heartbeat (a run from before schema 4) reads as NaN: never fresh.
    if (old->status == "running" && stale_after_s > 0 && std::isfinite(old->heartbeat_at) &&
        now - old->heartbeat_at < stale_after_s && (!holder_alive || holder_alive(*old)))
      return claim;
    claim.run_id = old->id;
    std::error_code ec;
    // checkpoint_epoch: epochs completed (-1: a checkpoint in the middle of the first epoch).
    if (resume && !old->checkpoint.empty() && fs::exists(old->checkpoint, ec)) {
      claim.resumed = true;
      claim.from_epoch = old->checkpoint_epoch + 1;
      claim.from_step = old->checkpoint_step;
      claim.checkpoint = old->checkpoint;
    }
    drop_rows_after(db_, claim.run_id, claim.from_step, claim.from_epoch, /*keep_layers=*/claim.resumed);
    restart_run(db_, claim.run_id, run, now, claim.from_step, claim.resumed);
  } else {
    claim.run_id = insert_run(db_, run, now);
  }
  {
    Statement q(db_, "SELECT claim_token FROM runs WHERE id = ?1");
    q.bind(1, claim.run_id);
    q.step();
    claim.token = q.get_int(0);
  }
  tx.commit();
  return claim;
}

namespace {

// The writes, without a transaction of their own: the public functions below wrap them, fenced
// or not.

void write_heartbeat(Database& db, int64_t run_id) {
  Statement u(db, "UPDATE runs SET heartbeat_at = ?2 WHERE id = ?1");
  u.bind(1, run_id);
  u.bind(2, now_seconds());
  u.run();
}

void write_checkpoint(Database& db, int64_t run_id, const std::string& file, int64_t epoch, int64_t step) {
  Statement u(db,
              "UPDATE runs SET checkpoint = ?2, checkpoint_epoch = ?3, checkpoint_step = ?4, heartbeat_at = ?5 "
              "WHERE id = ?1");
  u.bind(1, run_id);
  u.bind(2, file);
  u.bind(3, epoch);
  u.bind(4, step);
  u.bind(5, now_seconds());
  u.run();
}

void write_clear_checkpoint(Database& db, int64_t run_id) {
  Statement u(db, "UPDATE runs SET checkpoint = NULL, checkpoint_epoch = NULL, checkpoint_step = NULL WHERE id = ?1");
  u.bind(1, run_id);
  u.run();
}

void write_metrics(Database& db, int64_t run_id, const std::vector<MetricRow>& rows) {
  Statement ins(db, "INSERT OR REPLACE INTO metrics (run_id, epoch, split, name, value) VALUES (?1, ?2, ?3, ?4, ?5)");
  for (const auto& r : rows) {
    ins.bind(1, run_id);
    ins.bind(2, r.epoch);
    ins.bind(3, r.split);
    ins.bind(4, r.name);
    ins.bind(5, r.value);
    ins.run();
  }
}

void write_steps(Database& db, int64_t run_id, const std::vector<StepRow>& rows) {
  Statement ins(db,
                "INSERT INTO steps (run_id, step, epoch, loss, train_acc, lr, alpha_hat, grad_norm, alpha_smooth, "
                "phase, clip_coef) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)");
  for (const StepRow& r : rows) {
    ins.bind(1, run_id);
    ins.bind(2, r.step);
    ins.bind(3, r.epoch);
    ins.bind(4, r.loss);
    ins.bind(5, r.train_acc);
    ins.bind(6, r.lr);
    ins.bind(7, r.alpha_hat);
    ins.bind(8, r.grad_norm);
    ins.bind(9, r.alpha_smooth);
    if (std::isfinite(r.phase))
      ins.bind(10, static_cast<int64_t>(r.phase));
    else
      ins.bind_null(10);
    ins.bind(11, r.clip_coef);
    ins.run();
  }
}

void write_eval(Database& db, int64_t run_id, const EvalRow& row) {
  Statement ins(db,
                "INSERT OR REPLACE INTO evals (run_id, epoch, step, split, loss, acc, top5, final) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
  ins.bind(1, run_id);
  ins.bind(2, row.epoch);
  ins.bind(3, row.step);
  ins.bind(4, row.split);
  ins.bind(5, row.loss);
  ins.bind(6, row.acc);
  ins.bind(7, row.top5);
  ins.bind(8, static_cast<int64_t>(row.final));
  ins.run();
}

void write_finish(Database& db, int64_t run_id, const RunResult& r) {
  // A run that stopped before its end has no final metrics: what the runner last measured is a
  // mid-training value and must not read as a result (the evals table keeps it per epoch).
  const bool ended = r.status != "failed" && r.status != "interrupted";
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double test_acc = ended ? r.test_acc : nan, test_loss = ended ? r.test_loss : nan;
  const double train_acc = ended ? r.train_acc : nan;
  // A vision run's main metric is accuracy: its value is the test accuracy unless given.
  const bool acc = r.metric.empty() || r.metric == "acc";
  const double test_metric = !ended ? nan : acc && std::isnan(r.test_metric) ? r.test_acc : r.test_metric;
  Statement u(db,
              "UPDATE runs SET status = ?2, test_acc = ?3, test_loss = ?4, steps = ?5, train_time_s = ?6, "
              "error = ?7, finished_at = ?8, train_acc = ?9, gen_gap = ?10, heartbeat_at = ?8, "
              "metric = COALESCE(?11, metric), val_metric = ?12, test_metric = ?13 WHERE id = ?1");
  u.bind(1, run_id);
  u.bind(2, r.status);
  u.bind(3, test_acc);
  u.bind(4, test_loss);
  u.bind(5, r.steps);
  u.bind(6, r.train_time_s);
  if (r.error.empty())
    u.bind_null(7);
  else
    u.bind(7, r.error);
  u.bind(8, now_seconds());
  u.bind(9, train_acc);
  u.bind(10, train_acc - test_acc);  // NaN (stored NULL) when either is unknown
  if (r.metric.empty())
    u.bind_null(11);
  else
    u.bind(11, r.metric);
  u.bind(12, ended ? r.val_metric : nan);
  u.bind(13, test_metric);
  u.run();
}

void write_layers(Database& db, int64_t run_id, const std::vector<LayerInfo>& layers) {
  {
    Statement d(db, "DELETE FROM layers WHERE run_id = ?1");
    d.bind(1, run_id);
    d.run();
  }
  Statement ins(db, "INSERT INTO layers (run_id, layer, name, numel) VALUES (?1, ?2, ?3, ?4)");
  for (const auto& l : layers) {
    ins.bind(1, run_id);
    ins.bind(2, l.index);
    ins.bind(3, l.name);
    ins.bind(4, l.numel);
    ins.run();
  }
}

void write_layer_alphas(Database& db, int64_t run_id, const std::vector<LayerAlphaRow>& rows) {
  Statement ins(db, "INSERT INTO alpha_layers (run_id, step, layer, alpha_hat) VALUES (?1, ?2, ?3, ?4)");
  for (const auto& r : rows) {
    ins.bind(1, run_id);
    ins.bind(2, r.step);
    ins.bind(3, r.layer);
    ins.bind(4, r.alpha_hat);
    ins.run();
  }
}

}  // namespace

void Store::hold(const Fence& fence, bool any_status) {
  Statement q(db_, "SELECT claim_token, status FROM runs WHERE id = ?1");
  q.bind(1, fence.run_id);
  const std::string run = "run " + std::to_string(fence.run_id);
  if (!q.step()) throw LostClaim(run + ": claim lost: the run is no longer in " + path());
  if (q.get_int(0) != fence.token) throw LostClaim(run + ": claim lost: taken over by another process");
  const std::string status = q.get_text(1);
  if (!any_status && status != "running")
    throw LostClaim(run + ": claim lost: the run is " + status + ", no longer running");
}

void Store::fenced(const Fence& fence, const std::function<void()>& write, bool any_status) {
  Transaction tx(db_);  // BEGIN IMMEDIATE: no claim can slip in between the check and the write
  hold(fence, any_status);
  write();
  tx.commit();
}

bool Store::holds(const Fence& fence) {
  try {
    hold(fence);
    return true;
  } catch (const LostClaim&) {
    return false;
  }
}

void Store::heartbeat(const Fence& f) {
  fenced(f, [&] { write_heartbeat(db_, f.run_id); });
}
void Store::set_checkpoint(const Fence& f, const std::string& file, int64_t epoch, int64_t step) {
  fenced(f, [&] { write_checkpoint(db_, f.run_id, file, epoch, step); });
}
void Store::add_metrics(const Fence& f, const std::vector<MetricRow>& rows) {
  fenced(f, [&] { write_metrics(db_, f.run_id, rows); });
}
void Store::append_steps(const Fence& f, const std::vector<StepRow>& rows) {
  fenced(f, [&] { write_steps(db_, f.run_id, rows); });
}
void Store::add_eval(const Fence& f, const EvalRow& row) {
  fenced(f, [&] { write_eval(db_, f.run_id, row); });
}
void Store::finish_run(const Fence& f, const RunResult& result) {
  fenced(f, [&] { write_finish(db_, f.run_id, result); });
}
void Store::set_layers(const Fence& f, const std::vector<LayerInfo>& layers) {
  fenced(f, [&] { write_layers(db_, f.run_id, layers); });
}
void Store::append_layer_alphas(const Fence& f, const std::vector<LayerAlphaRow>& rows) {
  fenced(f, [&] { write_layer_alphas(db_, f.run_id, rows); });
}
void Store::clear_checkpoint(const Fence& f) {
  fenced(
      f, [&] { write_clear_checkpoint(db_, f.run_id); }, /*any_status=*/true);
}

void Store::heartbeat(int64_t run_id) { write_heartbeat(db_, run_id); }
void Store::set_checkpoint(int64_t run_id, const std::string& file, int64_t epoch, int64_t step) {
  write_checkpoint(db_, run_id, file, epoch, step);
}
void Store::clear_checkpoint(int64_t run_id) { write_clear_checkpoint(db_, run_id); }
void Store::add_eval(int64_t run_id, const EvalRow& row) { write_eval(db_, run_id, row); }
void Store::finish_run(int64_t run_id, const RunResult& result) { write_finish(db_, run_id, result); }

void Store::add_metrics(int64_t run_id, const std::vector<MetricRow>& rows) {
  if (rows.empty()) return;
  Transaction tx(db_);
  write_metrics(db_, run_id, rows);
  tx.commit();
}

void Store::append_steps(int64_t run_id, const std::vector<StepRow>& rows) {
  if (rows.empty()) return;
  Transaction tx(db_);
  write_steps(db_, run_id, rows);
  tx.commit();
}

void Store::set_layers(int64_t run_id, const std::vector<LayerInfo>& layers) {
  Transaction tx(db_);
  write_layers(db_, run_id, layers);
  tx.commit();
}

void Store::append_layer_alphas(int64_t run_id, const std::vector<LayerAlphaRow>& rows) {
  if (rows.empty()) return;
  Transaction tx(db_);
  write_layer_alphas(db_, run_id, rows);
  tx.commit();
}

std::vector<MetricRow> Store::metrics(int64_t run_id) {
  Statement q(db_, "SELECT epoch, split, name, value FROM metrics WHERE run_id = ?1 ORDER BY epoch, split, name");
  q.bind(1, run_id);
  std::vector<MetricRow> out;
  while (q.step()) out.push_back({q.get_int(0), q.get_text(1), q.get_text(2), q.get_double(3)});
  return out;
}

std::optional<RunRecord> Store::run(int64_t run_id) {
  Statement q(db_, (select_runs(version_) + " WHERE id = ?1").c_str());
  q.bind(1, run_id);
  if (!q.step()) return std::nullopt;
  return read_run(q);
}

std::vector<LayerInfo> Store::layers(int64_t run_id) {
  Statement q(db_, "SELECT layer, name, numel FROM layers WHERE run_id = ?1 ORDER BY layer");
  q.bind(1, run_id);
  std::vector<LayerInfo> out;
  while (q.step()) out.push_back({q.get_int(0), q.get_text(1), q.get_int(2)});
  return out;
}

void Store::for_each_layer_alpha(const std::function<void(int64_t, const LayerAlphaRow&)>& fn) {
  storage::for_each_layer_alpha(db_, run_ids(), fn);
}

std::vector<int64_t> Store::run_ids() {
  Statement q(db_, "SELECT id FROM runs ORDER BY id");
  std::vector<int64_t> ids;
  while (q.step()) ids.push_back(q.get_int(0));
  return ids;
}

std::vector<RunRecord> Store::runs() {
  Statement q(db_, (select_runs(version_) + " ORDER BY id").c_str());
  std::vector<RunRecord> out;
  while (q.step()) out.push_back(read_run(q));
  return out;
}

void Store::for_each_step(const std::function<void(int64_t, const StepRow&)>& fn) {
  storage::for_each_step(db_, run_ids(), fn);
}

std::vector<EvalRow> Store::evals(int64_t run_id) {
  std::vector<EvalRow> out;
  for_each_eval(db_, {run_id}, [&](int64_t, const EvalRow& r) { out.push_back(r); });
  return out;
}

}  // namespace htga::storage

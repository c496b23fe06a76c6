#include "storage/store.h"

#include <sqlite3.h>

#include <chrono>
#include <cmath>
#include <filesystem>

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

}  // namespace

Store::Store(const std::string& path) : db_(path) {
  // Refuse a newer or foreign file before anything (the journal mode included) changes it.
  try {
    Statement q(db_, "PRAGMA user_version");
    const int version = q.step() ? static_cast<int>(q.get_int(0)) : 0;
    if (version > kSchemaVersion)
      throw OpenError(db_.path() + ": database schema version " + std::to_string(version) +
                      " is newer than this htga understands (" + std::to_string(kSchemaVersion) + "); upgrade htga");
    if (version == 0) {
      Statement t(db_, "SELECT count(*) FROM sqlite_master");
      if (t.step() && t.get_int(0) != 0)
        throw OpenError(db_.path() + ": not an htga database (it has tables but no htga schema)");
    }
  } catch (const Error& e) {
    if ((e.code() & 0xff) == SQLITE_NOTADB) throw OpenError(db_.path() + ": not an SQLite database");
    throw;
  }
  db_.exec("PRAGMA journal_mode=WAL");
  db_.exec("PRAGMA synchronous=NORMAL");
  db_.exec("PRAGMA foreign_keys=ON");
  migrate();
}

void Store::migrate() {
  int version = 0;
  {
    Statement q(db_, "PRAGMA user_version");
    if (q.step()) version = static_cast<int>(q.get_int(0));
  }
  if (version > kSchemaVersion)
    throw OpenError(db_.path() + ": database schema version " + std::to_string(version) +
                    " is newer than this htga understands (" + std::to_string(kSchemaVersion) + "); upgrade htga");
  if (version == kSchemaVersion) return;
  Transaction tx(db_);
  if (version == 0) {
    // A version-0 file must be empty: never write our schema into someone else's database.
    Statement q(db_, "SELECT count(*) FROM sqlite_master");
    if (q.step() && q.get_int(0) != 0)
      throw OpenError(db_.path() + ": not an htga database (it has tables but no htga schema)");
    db_.exec(kSchemaV1);
    version = 1;
  }
  // Each step upgrades by one version, all inside the one transaction: a failure leaves the
  // file as it was.
  if (version == 1) {
    db_.exec(kMigrateV1toV2);
    version = 2;
  }
  if (version == 2) {
    db_.exec(kMigrateV2toV3);
    version = 3;
  }
  if (version == 3) {
    db_.exec(kMigrateV3toV4);
    version = 4;
  }
  db_.exec(("PRAGMA user_version=" + std::to_string(kSchemaVersion)).c_str());
  tx.commit();
}

namespace {
constexpr const char* kRunColumns =
    "id, cell_key, grid, config, status, error, dataset, model, optimizer, seed, device, "
    "started_at, finished_at, test_acc, test_loss, train_time_s, steps, htga_version, "
    "torch_version, train_acc, gen_gap, git_commit, host, pid, heartbeat_at, checkpoint, checkpoint_epoch, "
    "checkpoint_step, metric, val_metric, test_metric";

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
  return r;
}
}  // namespace

std::optional<RunRecord> Store::find_run(const std::string& cell_key) {
  Statement q(db_, (std::string("SELECT ") + kRunColumns + " FROM runs WHERE cell_key = ?1").c_str());
  q.bind(1, cell_key);
  if (!q.step()) return std::nullopt;
  return read_run(q);
}

int64_t Store::begin_run(const RunRecord& run) { return claim_run(run, 0, false).run_id; }

Claim Store::claim_run(const RunRecord& run, double stale_after_s, bool resume,
                       const std::function<bool(const RunRecord&)>& holder_alive) {
  namespace fs = std::filesystem;
  Transaction tx(db_);  // BEGIN IMMEDIATE: two processes cannot both claim the cell
  Claim claim;
  const double now = now_seconds();
  std::optional<RunRecord> old;
  {
    Statement q(db_, (std::string("SELECT ") + kRunColumns + " FROM runs WHERE cell_key = ?1").c_str());
    q.bind(1, run.cell_key);
    if (q.step()) old = read_run(q);
  }
  if (old) {
    // NULL heartbeat (a run from before schema 4) reads as NaN: never fresh.
    if (old->status == "running" && stale_after_s > 0 && std::isfinite(old->heartbeat_at) &&
        now - old->heartbeat_at < stale_after_s && (!holder_alive || holder_alive(*old)))
      return claim;
    claim.run_id = old->id;
    std::error_code ec;
    if (resume && old->checkpoint_epoch >= 0 && !old->checkpoint.empty() && fs::exists(old->checkpoint, ec)) {
      claim.resumed = true;
      claim.from_epoch = old->checkpoint_epoch + 1;
      claim.from_step = old->checkpoint_step;
      claim.checkpoint = old->checkpoint;
    }
    // Rows after the checkpoint (all rows without one) are replaced, never duplicated.
    const int64_t step0 = claim.from_step, epoch0 = claim.from_epoch;
    for (const char* sql : {"DELETE FROM steps WHERE run_id = ?1 AND step >= ?2",
                            "DELETE FROM alpha_layers WHERE run_id = ?1 AND step >= ?2"}) {
      Statement d(db_, sql);
      d.bind(1, claim.run_id);
      d.bind(2, step0);
      d.run();
    }
    for (const char* sql : {"DELETE FROM evals WHERE run_id = ?1 AND (epoch >= ?2 OR split = 'train')",
                            "DELETE FROM metrics WHERE run_id = ?1 AND (epoch >= ?2 OR split = 'train')"}) {
      Statement d(db_, sql);
      d.bind(1, claim.run_id);
      d.bind(2, epoch0);
      d.run();
    }
    {  // the final flag belongs to the last epoch, which is yet to come
      Statement d(db_, "UPDATE evals SET final = 0 WHERE run_id = ?1");
      d.bind(1, claim.run_id);
      d.run();
    }
    if (!claim.resumed) {
      Statement d(db_, "DELETE FROM layers WHERE run_id = ?1");
      d.bind(1, claim.run_id);
      d.run();
    }
    Statement u(db_,
                "UPDATE runs SET status = 'running', error = NULL, device = ?2, started_at = ?3, "
                "finished_at = NULL, test_acc = NULL, test_loss = NULL, train_time_s = NULL, train_acc = NULL, "
                "gen_gap = NULL, steps = ?7, htga_version = ?4, torch_version = ?5, grid = ?6, git_commit = ?8, "
                "host = ?9, pid = ?10, heartbeat_at = ?3, val_metric = NULL, test_metric = NULL, "
                "checkpoint = CASE WHEN ?11 THEN checkpoint ELSE NULL END, "
                "checkpoint_epoch = CASE WHEN ?11 THEN checkpoint_epoch ELSE NULL END, "
                "checkpoint_step = CASE WHEN ?11 THEN checkpoint_step ELSE NULL END WHERE id = ?1");
    u.bind(1, claim.run_id);
    u.bind(2, run.device);
    u.bind(3, now);
    u.bind(4, run.htga_version);
    u.bind(5, run.torch_version);
    u.bind(6, run.grid);
    u.bind(7, step0);
    u.bind(8, run.git_commit);
    u.bind(9, run.host);
    u.bind(10, run.pid);
    u.bind(11, static_cast<int64_t>(claim.resumed));
    u.run();
  } else {
    Statement ins(db_,
                  "INSERT INTO runs (cell_key, grid, config, status, dataset, model, optimizer, "
                  "seed, device, started_at, steps, htga_version, torch_version, git_commit, host, pid, "
                  "heartbeat_at, metric) "
                  "VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10, ?11, ?12, ?13, ?14, ?9, ?15)");
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
    ins.run();
    claim.run_id = db_.last_insert_rowid();
  }
  tx.commit();
  return claim;
}

void Store::heartbeat(int64_t run_id) {
  Statement u(db_, "UPDATE runs SET heartbeat_at = ?2 WHERE id = ?1");
  u.bind(1, run_id);
  u.bind(2, now_seconds());
  u.run();
}

void Store::set_checkpoint(int64_t run_id, const std::string& file, int64_t epoch, int64_t step) {
  Statement u(db_,
              "UPDATE runs SET checkpoint = ?2, checkpoint_epoch = ?3, checkpoint_step = ?4, heartbeat_at = ?5 "
              "WHERE id = ?1");
  u.bind(1, run_id);
  u.bind(2, file);
  u.bind(3, epoch);
  u.bind(4, step);
  u.bind(5, now_seconds());
  u.run();
}

void Store::add_metrics(int64_t run_id, const std::vector<MetricRow>& rows) {
  if (rows.empty()) return;
  Transaction tx(db_);
  Statement ins(db_, "INSERT OR REPLACE INTO metrics (run_id, epoch, split, name, value) VALUES (?1, ?2, ?3, ?4, ?5)");
  for (const auto& r : rows) {
    ins.bind(1, run_id);
    ins.bind(2, r.epoch);
    ins.bind(3, r.split);
    ins.bind(4, r.name);
    ins.bind(5, r.value);
    ins.run();
  }
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
  Statement q(db_, (std::string("SELECT ") + kRunColumns + " FROM runs WHERE id = ?1").c_str());
  q.bind(1, run_id);
  if (!q.step()) return std::nullopt;
  return read_run(q);
}

void Store::append_steps(int64_t run_id, const std::vector<StepRow>& rows) {
  if (rows.empty()) return;
  Transaction tx(db_);
  Statement ins(db_,
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
  tx.commit();
}

void Store::add_eval(int64_t run_id, const EvalRow& row) {
  Statement ins(db_,
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

void Store::finish_run(int64_t run_id, const RunResult& r) {
  Statement u(db_,
              "UPDATE runs SET status = ?2, test_acc = ?3, test_loss = ?4, steps = ?5, train_time_s = ?6, "
              "error = ?7, finished_at = ?8, train_acc = ?9, gen_gap = ?10, heartbeat_at = ?8, "
              "metric = COALESCE(?11, metric), val_metric = ?12, test_metric = ?13 WHERE id = ?1");
  u.bind(1, run_id);
  u.bind(2, r.status);
  u.bind(3, r.test_acc);
  u.bind(4, r.test_loss);
  u.bind(5, r.steps);
  u.bind(6, r.train_time_s);
  if (r.error.empty())
    u.bind_null(7);
  else
    u.bind(7, r.error);
  u.bind(8, now_seconds());
  u.bind(9, r.train_acc);
  u.bind(10, r.train_acc - r.test_acc);  // NaN (stored NULL) when either is unknown
  if (r.metric.empty())
    u.bind_null(11);
  else
    u.bind(11, r.metric);
  // A vision run's main metric is accuracy: its value is the test accuracy unless given.
  const bool acc = r.metric.empty() || r.metric == "acc";
  u.bind(12, r.val_metric);
  u.bind(13, acc && std::isnan(r.test_metric) ? r.test_acc : r.test_metric);
  u.run();
}

void Store::set_layers(int64_t run_id, const std::vector<LayerInfo>& layers) {
  Transaction tx(db_);
  {
    Statement d(db_, "DELETE FROM layers WHERE run_id = ?1");
    d.bind(1, run_id);
    d.run();
  }
  Statement ins(db_, "INSERT INTO layers (run_id, layer, name, numel) VALUES (?1, ?2, ?3, ?4)");
  for (const auto& l : layers) {
    ins.bind(1, run_id);
    ins.bind(2, l.index);
    ins.bind(3, l.name);
    ins.bind(4, l.numel);
    ins.run();
  }
  tx.commit();
}

void Store::append_layer_alphas(int64_t run_id, const std::vector<LayerAlphaRow>& rows) {
  if (rows.empty()) return;
  Transaction tx(db_);
  Statement ins(db_, "INSERT INTO alpha_layers (run_id, step, layer, alpha_hat) VALUES (?1, ?2, ?3, ?4)");
  for (const auto& r : rows) {
    ins.bind(1, run_id);
    ins.bind(2, r.step);
    ins.bind(3, r.layer);
    ins.bind(4, r.alpha_hat);
    ins.run();
  }
  tx.commit();
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
  Statement q(db_, (std::string("SELECT ") + kRunColumns + " FROM runs ORDER BY id").c_str());
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

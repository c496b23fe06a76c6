#pragma once
// The result database: runs, per-step rows and evaluations. SQLite only; no LibTorch here.

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "storage/sqlite.h"

namespace htga::storage {

/// Schema version written to PRAGMA user_version; a newer database is refused.
constexpr int kSchemaVersion = 6;
/// PRAGMA application_id of an htga database ("HTGA"), written since schema 5. A file with
/// another id is another program's; one without (0) is htga's only if its tables are exactly
/// those of its user_version.
constexpr int32_t kApplicationId = 0x48544741;
/// The oldest schema that read-only opens read as it is: the queries read no column added since.
/// An older file is read through a migrated temporary copy.
constexpr int kOldestReadableSchema = 4;

/// A run status that is a result: finished or diverged. Such a cell is never claimed again.
inline bool is_done(const std::string& status) { return status == "finished" || status == "diverged"; }

/// One cell of a grid as stored. Metrics that are not known yet are NaN.
struct RunRecord {
  int64_t id = 0;
  std::string cell_key;     // hash of the canonical cell config
  std::string grid;         // grid name
  std::string config_json;  // canonical cell config
  std::string status;       // running, finished, failed, diverged, interrupted
  std::string error;        // why a run failed, diverged or was interrupted
  std::string dataset, model, optimizer;
  int64_t seed = 0;
  std::string device;                      // device the run used (cpu, cuda:0)
  double started_at = 0, finished_at = 0;  // unix seconds
  double test_acc = 0, test_loss = 0;      // final test metrics (NaN when unknown)
  double train_acc = 0;                    // final accuracy on the training set (NaN when unknown)
  double gen_gap = 0;                      // train_acc - test_acc
  double train_time_s = 0;                 // seconds spent training and evaluating
  int64_t steps = 0;                       // optimizer steps taken
  std::string htga_version, torch_version;
  // Schema 4: what reproduces the run, and its liveness.
  std::string git_commit;                  // commit htga was built from ("" when unknown)
  std::string host;                        // machine that ran it
  int64_t pid = 0;                         // process that ran it
  double heartbeat_at = 0;                 // unix seconds of the last sign of life (NaN when none)
  std::string checkpoint;                  // file of the last checkpoint ("" when none)
  int64_t checkpoint_epoch = -1;           // epochs completed in that checkpoint (-1 when none)
  int64_t checkpoint_step = 0;             // steps taken in that checkpoint
  std::string metric;                      // the task's main metric (acc, mcc, f1, pearson, ppl, ...)
  double val_metric = 0, test_metric = 0;  // final values of that metric (NaN when unknown)
  // Schema 6.
  int64_t threads = 0;  // intra-op threads the run trained with (0 = unknown: older runs)
};

/// One optimizer step. NaN is stored as NULL.
struct StepRow {
  int64_t step = 0;  // 0-based, counts across epochs
  int64_t epoch = 0;
  double loss = 0, train_acc = 0, lr = 0, alpha_hat = 0, grad_norm = 0;
  double alpha_smooth = std::numeric_limits<double>::quiet_NaN();  // htga: the smoothed alpha_hat
  double phase = std::numeric_limits<double>::quiet_NaN();         // htga: 0 normal, 1 explore, 2 final
  double clip_coef = std::numeric_limits<double>::quiet_NaN();     // factor clipping applied (1 = none)
};

/// An evaluation at the end of an epoch.
struct EvalRow {
  int64_t epoch = 0;
  int64_t step = 0;   // steps taken when evaluated
  std::string split;  // "train", "val" or "test"
  double loss = 0, acc = 0;
  double top5 = std::numeric_limits<double>::quiet_NaN();  // top-5 accuracy (NaN when not measured)
  bool final = false;                                      // the run's last evaluation of this split
};

/// How a run ended. Metrics that are not known are NaN.
struct RunResult {
  std::string status;  // finished, failed, diverged
  std::string error;   // why it failed or diverged
  double test_acc = std::numeric_limits<double>::quiet_NaN();
  double test_loss = std::numeric_limits<double>::quiet_NaN();
  double train_acc = std::numeric_limits<double>::quiet_NaN();
  int64_t steps = 0;
  double train_time_s = 0;
  std::string metric;  // the task's main metric ("" = acc)
  double val_metric = std::numeric_limits<double>::quiet_NaN();
  double test_metric = std::numeric_limits<double>::quiet_NaN();
};

/// A named metric of an evaluation (acc, loss, top5, mcc, f1, pearson, spearman, em, ppl, ...).
struct MetricRow {
  int64_t epoch = 0;
  std::string split;  // train, val, test, test_mismatched, ...
  std::string name;
  double value = 0;
};

/// A claim's proof of ownership: the run and the claim token it was given. Every successful
/// claim of a run (insert or takeover) increments the run's stored token, so an older holder's
/// token no longer matches.
struct Fence {
  int64_t run_id = 0;
  int64_t token = 0;
};

/// A fenced write found that its claim is no longer held (the run was taken over, or is no
/// longer running); nothing was written. Not bad input: the caller stops that cell quietly.
class LostClaim : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// What begin_run decided about a cell.
struct Claim {
  int64_t run_id = 0;      // 0: another live process holds the cell (heartbeat fresh), or it is done
  std::string done;        // "finished" or "diverged" when the cell is done (nothing claimed)
  bool resumed = false;    // an earlier attempt left a checkpoint to continue from
  int64_t from_epoch = 0;  // epochs already done (checkpoint_epoch + 1 when resumed)
  int64_t from_step = 0;   // steps already done
  std::string checkpoint;  // file to load when resumed
  int64_t token = 0;       // the run's claim token after this claim (0 when run_id is 0)

  Fence fence() const { return {run_id, token}; }
};

/// A parameter tensor whose alpha_hat is stored per layer.
struct LayerInfo {
  int64_t index = 0;
  std::string name;  // e.g. "layers.0.weight"
  int64_t numel = 0;
};

/// One per-layer estimate.
struct LayerAlphaRow {
  int64_t step = 0;
  int64_t layer = 0;  // LayerInfo::index
  double alpha_hat = 0;
};

class Store {
 public:
  enum class Mode {
    kReadWrite,  // opens or creates the file, switches it to WAL, brings its schema up to date
    kReadOnly,   // never writes, creates or migrates the file (see Store::Store)
  };

  /// Opens the database at `path` (checked first with check_database_path). Before anything
  /// changes, the file must be recognised as htga's: an SQLite file of another program, a newer
  /// schema or a non-SQLite file is refused with OpenError (bad input), the file untouched.
  ///
  /// kReadWrite: a missing or empty file becomes a new htga database; an older one is upgraded
  /// in place, one version at a time in one transaction.
  ///
  /// kReadOnly: the file must exist and hold an htga schema (an empty file is refused). It is
  /// opened with SQLite's mode=ro, or immutable=1 when its folder is not writable and no -wal
  /// file exists (SQLite cannot create the -shm a WAL reader needs there, and no writer can be
  /// running). Its journal mode is never changed. A schema older than kOldestReadableSchema is
  /// read through a temporary migrated copy (removed when the Store closes); the file itself
  /// stays byte for byte as it was. Writes throw.
  explicit Store(const std::string& path, Mode mode = Mode::kReadWrite);

  /// The path as the user gave it (also when a temporary copy is read).
  const std::string& path() const { return db_.path(); }
  Mode mode() const { return mode_; }

  /// The run stored under a cell key, if any.
  std::optional<RunRecord> find_run(const std::string& cell_key);

  /// Starts (or restarts) the run of a cell: inserts it, or, for a run that did not finish,
  /// deletes its old step and evaluation rows and marks it running again. Returns the run id.
  int64_t begin_run(const RunRecord& run);

  /// Claims a cell for this process in one transaction. A cell that is `running` with a
  /// heartbeat newer than `stale_after_s` seconds belongs to someone else (run_id 0). Otherwise
  /// the run is inserted or taken over; when `resume` and its recorded checkpoint file exists,
  /// the rows after the checkpoint are deleted and the claim says where to continue; else every
  /// old row is deleted. A finished or diverged cell is never taken (Claim::done says so): a
  /// result another process stored since the caller last looked stands. `holder_alive`,
  /// when given, is asked about a fresh `running` record: false (its process is gone, e.g. it
  /// ran on this host and its pid no longer exists) takes it over at once. Each successful
  /// claim increments the run's claim token and returns it (Claim::token, Claim::fence()).
  Claim claim_run(const RunRecord& run, double stale_after_s, bool resume,
                  const std::function<bool(const RunRecord&)>& holder_alive = {});

  // Fenced writes: each checks, in the same transaction as its write, that the run's stored
  // claim token equals fence.token and its status is `running`; otherwise it throws LostClaim
  // ("run N: claim lost: taken over by another process") and writes nothing.

  /// Sign of life of a running run.
  void heartbeat(const Fence& fence);
  /// Records a checkpoint written after `epoch` (0-based) at `step` steps.
  void set_checkpoint(const Fence& fence, const std::string& file, int64_t epoch, int64_t step);
  /// Named metrics of one evaluation, replacing earlier values of the same names.
  void add_metrics(const Fence& fence, const std::vector<MetricRow>& rows);
  /// Appends step rows.
  void append_steps(const Fence& fence, const std::vector<StepRow>& rows);
  void add_eval(const Fence& fence, const EvalRow& row);
  /// Closes the run (see finish_run(int64_t, const RunResult&)).
  void finish_run(const Fence& fence, const RunResult& result);
  void set_layers(const Fence& fence, const std::vector<LayerInfo>& layers);
  void append_layer_alphas(const Fence& fence, const std::vector<LayerAlphaRow>& rows);
  /// Forgets the run's checkpoint once its file is deleted. Fenced by the token alone (the
  /// file of a finished run is deleted after finish_run): throws LostClaim when another
  /// process has claimed the run since.
  void clear_checkpoint(const Fence& fence);
  /// True while the claim is still ours: the token matches and the run is `running`.
  bool holds(const Fence& fence);

  // The same writes by run id, unfenced (tests, merge, single-process tools).

  void heartbeat(int64_t run_id);
  void set_checkpoint(int64_t run_id, const std::string& file, int64_t epoch, int64_t step);
  void add_metrics(int64_t run_id, const std::vector<MetricRow>& rows);
  /// Appends step rows in one transaction.
  void append_steps(int64_t run_id, const std::vector<StepRow>& rows);
  void add_eval(int64_t run_id, const EvalRow& row);
  /// Closes a run with its status and final metrics (gen_gap = train_acc - test_acc). A failed
  /// or interrupted run has no final metrics: its test and train accuracy, test loss, gap and
  /// val/test metric are stored NULL whatever `result` holds (they would be mid-training values;
  /// the evaluations table keeps those per epoch).
  void finish_run(int64_t run_id, const RunResult& result);
  /// Records the layers of a run (replacing earlier ones) and appends per-layer estimates.
  void set_layers(int64_t run_id, const std::vector<LayerInfo>& layers);
  void append_layer_alphas(int64_t run_id, const std::vector<LayerAlphaRow>& rows);
  /// Forgets the run's checkpoint (file, epoch, step): call it when the file is deleted.
  void clear_checkpoint(int64_t run_id);

  /// All named metrics of a run, by epoch, split and name.
  std::vector<MetricRow> metrics(int64_t run_id);
  /// The run with this id, if any.
  std::optional<RunRecord> run(int64_t run_id);
  /// For read-only queries elsewhere (reports, exports): the connection.
  Database& database() { return db_; }

  std::vector<LayerInfo> layers(int64_t run_id);
  /// Calls `fn(run_id, row)` for each per-layer estimate, ordered by run, step and layer.
  void for_each_layer_alpha(const std::function<void(int64_t, const LayerAlphaRow&)>& fn);

  /// All runs, in id order.
  std::vector<RunRecord> runs();
  std::vector<int64_t> run_ids();
  /// Calls `fn(run_id, row)` for each step row, ordered by run and step.
  void for_each_step(const std::function<void(int64_t, const StepRow&)>& fn);
  std::vector<EvalRow> evals(int64_t run_id);

 private:
  /// A temporary file removed (with its -journal) when the Store closes.
  struct TempFile {
    std::string path;
    TempFile() = default;
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    ~TempFile();
  };

  void migrate();
  /// Throws LostClaim unless `fence` holds; `any_status`: the token alone decides.
  void hold(const Fence& fence, bool any_status = false);
  void fenced(const Fence& fence, const std::function<void()>& write, bool any_status = false);

  Mode mode_;
  TempFile snapshot_;             // declared before db_: removed after the connection closes
  int version_ = kSchemaVersion;  // the schema read (older ones only in read-only mode)
  Database db_;
};

}  // namespace htga::storage

#pragma once
// The runner: validates a grid, loads its datasets once, and trains every cell that the
// database does not already hold as finished, writing step rows, evaluations and results.

#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>

#include "experiments/data/dataset.h"
#include "experiments/grid.h"
#include "storage/store.h"
#include "storage/writer.h"

namespace htga::experiments {

struct RunOptions {
  std::string grid_path;                    // grid JSON file
  std::string db_path = "results/htga.db";  // result database
  bool dry_run = false;                     // list the cells and their state, train nothing
  std::string device;                       // overrides every cell's train.device when set
  bool quiet = false;                       // no progress at all
  bool live = false;                        // redraw a live display (stderr is a terminal)
  int64_t flush_every = 64;                 // steps buffered before a database transaction
  double flush_seconds = 5;                 // ... or seconds, whichever comes first
  int jobs = 1;                             // cells trained at once (threads of this process)
  int shard_index = 0, shard_count = 1;     // run the cells whose index % count == index
  int64_t max_cells = 1000;                 // larger grids need `yes`
  bool yes = false;
  double stale_after_s = 120;          // a `running` cell without a heartbeat this long is taken over
  double heartbeat_seconds = 10;       // how often running cells say they are alive
  double plain_progress_seconds = 60;  // not live: a progress line per training cell this often
  std::string checkpoint_dir;          // default: checkpoints/ beside the database
};

struct RunSummary {
  int cells = 0;        // cells in the grid
  int selected = 0;     // cells of this shard
  int skipped = 0;      // already finished or diverged in the database
  int finished = 0;     // trained to the end now
  int diverged = 0;     // stopped at a NaN/Inf loss (a result, recorded)
  int failed = 0;       // stopped by an error (recorded with the message)
  int interrupted = 0;  // stopped by a signal (recorded; resumed next time)
  int busy = 0;         // held by another live process (heartbeat fresh)
  int resumed = 0;      // continued from a checkpoint
};

/// Runs a grid file. Throws InputError (nothing written) when the grid, a name, a dataset
/// file or the database path is bad; a cell that fails while training is recorded as failed
/// and the grid goes on. After request_stop() the cells in training stop after their current
/// step, are recorded as interrupted, and no further cell starts.
RunSummary run_grid(const RunOptions& options, std::ostream& progress);

/// Cooperative stop (signal handlers call it): running cells finish their step, flush, and stop.
void request_stop();
bool stop_requested();
void reset_stop();
/// SIGINT and SIGTERM: the first asks for a stop; a second exits at once with status 130 (the
/// database stays consistent: SQLite commits are atomic).
void install_signal_handlers();

/// "auto" (CUDA when available), "cpu", "cuda", "cuda:N". Throws InputError for an unknown or
/// unavailable device.
torch::Device resolve_device(const std::string& name);

struct CellOutcome {
  std::string status;  // finished, diverged or interrupted
  std::string error;   // for diverged: where and what
  double test_acc = NAN, test_loss = NAN;
  double val_acc = NAN;                        // final validation accuracy (NaN without a validation split)
  double train_acc = NAN;                      // on the whole training set after the last epoch
  double val_metric = NAN, test_metric = NAN;  // the dataset's main metric (acc for images; mcc, ppl, ...)
  int64_t steps = 0;
  /// Where the training steps' time went (host clock: exact on the CPU; on a GPU the work is
  /// asynchronous and lands wherever the host next waits).
  struct Timing {
    int64_t steps = 0;   // steps timed by this process
    double step_s = 0;   // whole steps, logging included
    double alpha_s = 0;  // alpha_hat: the estimator (and the probe's gradients)
    double log_s = 0;    // the step's statistics, their host copy and the database queue
    double eval_s = 0;   // evaluations (validation, test, and the final pass over the training set)
    std::string note;    // how alpha_hat ran on CUDA (as a graph, or why not)
  } time;
};

/// Where a cell's rows go and how it reports progress.
struct CellContext {
  storage::Writer* writer = nullptr;
  int64_t run_id = 0;
  int64_t flush_every = 64;
  double flush_seconds = 5;
  storage::Claim claim;        // resumed: continue from claim.checkpoint
  std::string checkpoint_dir;  // "" = no checkpoints
  /// Called on the training thread at every flush: (steps done, epoch, last loss, last alpha_hat).
  std::function<void(int64_t, int64_t, double, double)> on_flush;
};

/// Trains one cell on a loaded dataset, writing its rows under ctx.run_id (through the writer;
/// every row is queued when it returns).
CellOutcome train_cell(const Cell& cell, const data::Dataset& dataset, const torch::Device& device,
                       const CellContext& ctx);

}  // namespace htga::experiments

#pragma once
// The runner: validates a grid, loads its datasets once, and trains every cell that the
// database does not already hold as finished. It composes the units that do the work:
//   grid_checks   everything checked before anything is written
//   cell_run      one cell's life: claim, build, resume or restart, train, record
//   cell_builder  canonical config -> typed settings           (JSON stops there)
//   trainer       the training loop of one cell (step, evaluate, checkpoint)
//   checkpoint    save, load and verify a cell's state
//   scheduler     shards, claims and takeover, heartbeats, the worker pool
//   cell_writer   a cell's rows, fenced by its claim
//   progress      events the CLI shows (the runner prints nothing)

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "experiments/progress.h"
#include "experiments/stop.h"

namespace htga::experiments {

struct RunOptions {
  std::string grid_path;                    // grid JSON file
  std::string db_path = "results/htga.db";  // result database
  bool dry_run = false;                     // list the cells and their state, train nothing
  std::string device;                       // overrides every cell's train.device when set
  int64_t flush_every = 64;                 // steps buffered before a database transaction
  double flush_seconds = 5;                 // ... or seconds, whichever comes first
  int jobs = 1;                             // cells trained at once (threads of this process)
  int threads = 0;                          // intra-op threads in all, divided among the jobs
                                            // (0: OMP_NUM_THREADS, else every usable CPU)
  int shard_index = 0, shard_count = 1;     // run the cells whose index % count == index
  int64_t max_cells = 1000;                 // larger grids need `yes`
  bool yes = false;
  double stale_after_s = 120;     // a `running` cell without a heartbeat this long is taken over
  double heartbeat_seconds = 10;  // how often running cells say they are alive
  double tick_seconds = 1;        // how often Progress::tick is called
  std::string checkpoint_dir;     // default: checkpoints/ beside the database
};

/// A cell of a dry run: where the database has it.
struct PlannedCell {
  CellRef cell;
  std::string state;  // new, finished, diverged, failed, interrupted, running (+ checkpoint)
};

struct RunSummary {
  int cells = 0;                  // cells in the grid
  int selected = 0;               // cells of this shard
  int skipped = 0;                // already finished or diverged in the database
  int finished = 0;               // trained to the end now
  int diverged = 0;               // stopped at a NaN/Inf loss (a result, recorded)
  int failed = 0;                 // stopped by an error (recorded with the message)
  int interrupted = 0;            // stopped by a signal (recorded; resumed next time)
  int busy = 0;                   // held by another live process (heartbeat fresh)
  int lost = 0;                   // taken over by another process while training here (its result stands)
  int resumed = 0;                // continued from a checkpoint
  int restarted = 0;              // their checkpoint was unusable: set aside, trained from the start
  std::vector<PlannedCell> plan;  // dry run: this shard's cells
};

/// Runs a grid file. Throws InputError (nothing written) when the grid, a name, a value, a
/// dataset file, the database path or the checkpoint folder is bad; a cell that fails while
/// training is recorded as failed and the grid goes on (with any --jobs). After request_stop()
/// the cells in training stop after their current step, are recorded as interrupted, and no
/// further cell starts.
RunSummary run_grid(const RunOptions& options, Progress& progress);

/// "auto" (CUDA when available), "cpu", "cuda", "cuda:N". Throws InputError for an unknown or
/// unavailable device.
torch::Device resolve_device(const std::string& name);

}  // namespace htga::experiments

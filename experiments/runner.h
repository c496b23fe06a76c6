#pragma once
// The runner: validates a grid, loads its datasets once, and trains every cell that the
// database does not already hold as finished, writing step rows, evaluations and results.

#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <iosfwd>
#include <string>

#include "experiments/data/dataset.h"
#include "experiments/grid.h"
#include "storage/store.h"

namespace htga::experiments {

struct RunOptions {
  std::string grid_path;                    // grid JSON file
  std::string db_path = "results/htga.db";  // result database
  bool dry_run = false;                     // list the cells and their state, train nothing
  std::string device;                       // overrides every cell's train.device when set
  bool quiet = false;                       // no progress lines
  int64_t flush_every = 64;                 // steps buffered before a database transaction
};

struct RunSummary {
  int cells = 0;     // cells in the grid
  int skipped = 0;   // already finished or diverged in the database
  int finished = 0;  // trained to the end now
  int diverged = 0;  // stopped at a NaN/Inf loss (a result, recorded)
  int failed = 0;    // stopped by an error (recorded with the message)
};

/// Runs a grid file. Throws InputError (nothing written) when the grid, a name, a dataset
/// file or the database path is bad; a cell that fails while training is recorded as failed
/// and the grid goes on.
RunSummary run_grid(const RunOptions& options, std::ostream& progress);

/// "auto" (CUDA when available), "cpu", "cuda", "cuda:N". Throws InputError for an unknown or
/// unavailable device.
torch::Device resolve_device(const std::string& name);

struct CellOutcome {
  std::string status;  // finished or diverged
  std::string error;   // for diverged: where and what
  double test_acc = NAN, test_loss = NAN;
  double train_acc = NAN;  // on the whole training set after the last epoch
  int64_t steps = 0;
};

/// Trains one cell on a loaded dataset, writing its rows under `run_id`.
CellOutcome train_cell(const Cell& cell, const data::Dataset& dataset, const torch::Device& device,
                       storage::Store& store, int64_t run_id, int64_t flush_every);

}  // namespace htga::experiments

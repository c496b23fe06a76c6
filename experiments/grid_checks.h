#pragma once
// The checks a grid run makes before anything is written: the run's own options, settings of
// the cells that the registry's ranges let through but no cell could train with, and the folders
// it will write into. Each throws InputError naming the file, the cell or the option.

#include <cstddef>
#include <string>

#include "experiments/grid.h"
#include "experiments/runner.h"

namespace htga::experiments {

/// --shard, --jobs, --flush-every, the heartbeat and --stale-after (at least 3 heartbeats), and
/// --max-cells against the grid's `cells`.
void check_run_options(const RunOptions& options, size_t cells);

/// Every cell's typed settings: rates that overflow float32, HTGA's options (the controller's own
/// check), alpha_hat turned off under htga.
void check_cells(const Grid& grid);

/// A folder htga will write into must be one or be creatable; a missing one is made and removed
/// again, which leaves nothing behind. The message starts with `who` (the option or file).
void check_folder(const std::string& dir, const std::string& who);

}  // namespace htga::experiments

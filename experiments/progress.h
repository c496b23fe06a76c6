#pragma once
// Progress of a grid run as events: the runner calls them (from its worker threads, so an
// implementation locks), and the CLI implements them (terminal bars, plain lines, quiet).
// The runner itself prints nothing.

#include <chrono>
#include <cmath>
#include <cstdint>
#include <string>

namespace htga::experiments {

/// A cell of the grid being run.
struct CellRef {
  size_t index = 0;  // 0-based, in the grid
  size_t total = 0;  // cells in the grid
  std::string key, label;
};

/// The threads a run uses (reported once its datasets loaded).
struct ThreadsChosen {
  int total = 1, per_cell = 1, jobs = 1;
  std::string why;  // "--threads 4", "OMP_NUM_THREADS=3", "2 CPUs (affinity mask)"
};

struct DatasetLoaded {
  std::string name, device, cache_note;
  int64_t train = 0, val = 0, test = 0;  // rows
  double seconds = 0;
};

/// A cell claimed by this process.
struct CellStarted {
  int64_t run_id = 0;
  int64_t epochs = 0, total_steps = 0;
  int64_t from_epoch = 0, from_step = 0;  // > 0 when resumed from a checkpoint
  bool resumed = false;
};

/// Where a cell in training is, at each flush of its rows.
struct CellTick {
  int64_t step = 0, epoch = 0;
  double loss = NAN, alpha = NAN;
};

/// How a cell ended in this process.
struct CellEnded {
  std::string status;  // finished, diverged, interrupted, failed, lost
  std::string error;   // diverged, interrupted, failed: why; lost: who took it
  std::string metric;  // the main metric's name (acc for images)
  double test_acc = NAN, test_loss = NAN, test_metric = NAN;
  int64_t steps = 0;
  double seconds = 0;
  // Timing of the steps done here (0 steps: none).
  int64_t timed_steps = 0;
  double step_s = 0, alpha_s = 0, log_s = 0, eval_s = 0;
  std::string note;  // e.g. how alpha_hat ran on CUDA
};

class Progress {
 public:
  virtual ~Progress() = default;
  virtual void threads_chosen(const ThreadsChosen&) {}
  virtual void dataset_loaded(const DatasetLoaded&) {}
  /// Finished or diverged in the database before this run: not trained again.
  virtual void cell_skipped(const CellRef&, const std::string& status) {}
  /// Held by another live process (fresh heartbeat): left to it.
  virtual void cell_busy(const CellRef&) {}
  /// Its checkpoint could not be used: set aside, the cell restarts from the beginning.
  virtual void cell_checkpoint_bad(const CellRef&, const std::string& why) {}
  virtual void cell_started(const CellRef&, const CellStarted&) {}
  virtual void cell_tick(const CellRef&, const CellTick&) {}
  virtual void cell_ended(const CellRef&, const CellEnded&) {}
  /// Called about every second while cells train (a live display redraws here).
  virtual void tick(int jobs) {}
  /// The grid run is over (a live display clears itself).
  virtual void done() {}
};

/// Progress that shows nothing.
class NoProgress : public Progress {};

}  // namespace htga::experiments

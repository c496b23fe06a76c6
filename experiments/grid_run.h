#pragma once
// What one grid run shares among its cells (the runner's state), and the life of one cell in
// it: claim, build, resume or restart, train, record. Internal to experiments/: the runner
// makes a GridRun, the scheduler's workers call run_cell.

#include <torch/torch.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "experiments/data/dataset.h"
#include "experiments/grid.h"
#include "experiments/progress.h"
#include "experiments/runner.h"
#include "experiments/scheduler.h"
#include "storage/writer.h"

namespace htga::experiments {

/// Everything one grid run shares among its cells.
struct GridRun {
  GridRun(const RunOptions& o, Progress& p, const Grid& gr) : options(o), progress(p), grid(gr) {}

  const RunOptions& options;
  Progress& progress;
  const Grid& grid;
  std::map<std::string, torch::Device> devices;   // by name
  std::map<std::string, data::Dataset> datasets;  // by dataset config @ device
  std::unique_ptr<storage::Writer> writer;
  std::string checkpoint_dir, host;
  int64_t pid = 0;
  int threads_per_cell = 1;  // intra-op threads each cell trains with (the run record says)
  ActiveCells active;
  std::mutex summary_mu;
  RunSummary summary;

  const torch::Device& device_of(const Cell& c) const {
    return devices.at(options.device.empty() ? c.config["train"]["device"].get<std::string>() : options.device);
  }
  std::string data_key(const Cell& c) const { return c.config["dataset"].dump() + "@" + device_of(c).str(); }
  CellRef ref(size_t i) const {
    const Cell& c = grid.cells[i];
    return {i, grid.cells.size(), c.key, c.label};
  }
  void count(int RunSummary::*field) {
    std::lock_guard<std::mutex> lock(summary_mu);
    ++(summary.*field);
  }
};

/// Claims cell i for this process and, unless another process holds it or it is done, trains it
/// and records how it ended (failures of this cell are recorded, never thrown).
void run_cell(GridRun& g, size_t i);

}  // namespace htga::experiments

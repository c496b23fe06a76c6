#pragma once
// The scheduler: which cells this process takes (shards), claims with takeover of dead or
// stale holders, heartbeats of the cells in training, and the pool of worker threads.

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "experiments/cell_writer.h"
#include "storage/store.h"
#include "storage/writer.h"

namespace htga::experiments {

/// The cells of shard `index` of `count`: those whose index modulo count is `index`.
std::vector<size_t> shard_cells(size_t cells, int index, int count);

/// This machine's name ("" when unknown), as run records store it.
std::string host_name();

/// Claims the run of `record` (host and pid of this process) for this process. A `running`
/// record with a heartbeat fresher than `stale_after_s` belongs to another process (run_id 0
/// in the claim), unless that process ran on this host and is gone (its pid no longer exists):
/// then it is taken over at once.
storage::Claim claim_cell(storage::Writer& writer, const storage::RunRecord& record, double stale_after_s,
                          bool resume = true);

/// The cells this process trains now: a fenced heartbeat for each, every so often.
class ActiveCells {
 public:
  void add(size_t index, CellWriter* writer);
  void remove(size_t index);
  size_t size();
  /// Queues a heartbeat of every active cell (a lost claim marks the cell lost).
  void heartbeat_all();

 private:
  std::mutex mu_;
  std::map<size_t, CellWriter*> cells_;
};

struct PoolOptions {
  int jobs = 1;                   // worker threads
  int threads_per_job = 1;        // intra-op threads of each worker
  double heartbeat_seconds = 10;  // between heartbeats of the active cells
  double tick_seconds = 1;        // between calls of on_tick
};

/// Runs `work(i)` for each i of `todo`, in order, on `options.jobs` threads (each with its share
/// of the intra-op threads), until `stop()` says so. Meanwhile a thread beats the hearts of
/// `active` and calls `on_tick`. An exception escaping `work` does not stop the other cells: the
/// first is rethrown when every worker has ended.
void run_pool(const std::vector<size_t>& todo, const PoolOptions& options, const std::function<void(size_t)>& work,
              const std::function<bool()>& stop, ActiveCells& active, const std::function<void()>& on_tick);

}  // namespace htga::experiments

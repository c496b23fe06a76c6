#include "experiments/runner.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>

#include "experiments/cpus.h"
#include "experiments/error.h"
#include "experiments/grid.h"
#include "experiments/grid_checks.h"
#include "experiments/grid_run.h"
#include "experiments/models/zoo.h"
#include "experiments/scheduler.h"
#include "experiments/torch_compat.h"
#include "storage/paths.h"
#include "storage/store.h"
#include "storage/writer.h"

namespace htga::experiments {

namespace fs = std::filesystem;

torch::Device resolve_device(const std::string& name) {
  if (name == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  std::optional<torch::Device> d;
  try {
    d = torch::Device(name);
  } catch (const std::exception&) {
    throw InputError("device \"" + name + "\": unknown; valid: auto, cpu, cuda, cuda:N");
  }
  if (d->is_cuda() && !torch::cuda::is_available())
    throw InputError("device \"" + name + "\": CUDA is not available on this machine (use auto or cpu)");
  if (!d->is_cpu() && !d->is_cuda())
    throw InputError("device \"" + name + "\": unsupported; valid: auto, cpu, cuda, cuda:N");
  return *d;
}

namespace {

/// Finished and diverged cells of a database that exists (a diverged run is a result: the same
/// seed diverges again), by cell key. Nothing is created.
std::map<std::string, storage::RunRecord> runs_on_record(const std::string& db_path) {
  std::map<std::string, storage::RunRecord> out;
  std::error_code ec;
  if (!fs::exists(db_path) || fs::file_size(db_path, ec) == 0) return out;  // to be created
  storage::Store store(db_path, storage::Store::Mode::kReadOnly);
  for (auto& r : store.runs()) out.emplace(r.cell_key, std::move(r));
  return out;
}

std::string planned_state(const std::optional<storage::RunRecord>& r) {
  if (!r) return "new";
  std::string state = r->status;
  if (r->checkpoint_epoch >= 0 && state != "finished")
    state += fmt::format(", checkpoint after epoch {}", r->checkpoint_epoch + 1);
  return state;
}

bool is_done(const storage::RunRecord& r) { return storage::is_done(r.status); }

void resolve_devices(GridRun& g) {
  for (const Cell& c : g.grid.cells) {
    const std::string name =
        g.options.device.empty() ? c.config["train"]["device"].get<std::string>() : g.options.device;
    if (g.devices.count(name)) continue;
    try {
      g.devices.emplace(name, resolve_device(name));
    } catch (const InputError& e) {
      throw InputError((g.options.device.empty() ? g.grid.source + ": /defaults/device: " : "--device: ") + e.what());
    }
  }
}

/// Every model a cell will train, built once here on the CPU: sizes that do not fit the data or
/// the memory are bad input found before anything is written, not failed cells.
void check_models(const GridRun& g, const std::vector<size_t>& todo) {
  std::set<std::string> built;
  for (size_t i : todo) {
    const Cell& c = g.grid.cells[i];
    const auto it = g.datasets.find(g.data_key(c));
    if (it == g.datasets.end() || !built.insert(c.config["model"].dump() + "@" + g.data_key(c)).second) continue;
    try {
      models::make_model(c.config["model"], models::input_shape_of(it->second));
    } catch (const std::exception& e) {
      std::string msg = e.what();
      msg = msg.substr(0, msg.find('\n'));
      // LibTorch's allocator and shape checks: say what they mean, without their source locations.
      if (msg.find("can't allocate memory") != std::string::npos || msg.find("overflow") != std::string::npos)
        msg = "too large for this machine's memory (" +
              msg.substr(msg.rfind("] ") == std::string::npos ? 0 : msg.rfind("] ") + 2) + ")";
      throw InputError(g.grid.source + ": " + c.label + ": model " + c.config["model"]["name"].get<std::string>() +
                       ": " + msg);
    }
  }
}

/// Loads the datasets of the cells to train (each once) and checks their models; the decoded
/// datasets' caches are written only when all of it passed.
void load_datasets(GridRun& g, const std::vector<size_t>& todo, const std::string& db_dir) {
  std::vector<std::function<void()>> cache_writes;
  data::LoadOptions load_options;  // decoded datasets cached beside the database
  load_options.cache_dir = (fs::path(db_dir) / "htga-data-cache").string();
  load_options.deferred_writes = &cache_writes;
  for (size_t i : todo) {
    const Cell& c = g.grid.cells[i];
    if (g.datasets.count(g.data_key(c)) || stop_requested()) continue;
    auto ds = data::load_dataset(c.config["dataset"], g.device_of(c), load_options);
    g.progress.dataset_loaded({ds.name, g.device_of(c).str(), ds.cache_note, ds.train_size(), ds.val_size(),
                               ds.test_size(), ds.load_seconds});
    g.datasets.emplace(g.data_key(c), std::move(ds));
  }
  check_models(g, todo);
  for (auto& write : cache_writes) write();
  // Cells train on streams of their own (compat::ThreadStream): the uploads finish first.
  for (const auto& [name, device] : g.devices) compat::synchronize(device);
}

/// Gives the calling thread back its intra-op thread count (run_grid changes it for loading).
class KeepThreads {
 public:
  KeepThreads() : n_(at::get_num_threads()) {}
  ~KeepThreads() { at::set_num_threads(n_); }

 private:
  int n_;
};

/// Plans the run's threads and gives this thread, which loads the datasets, all of them. Inter-op
/// threads stay at one: cells train on threads of their own, and htga forks no inter-op work,
/// so a pool beside them would only compete for the CPUs.
ThreadsChosen use_threads(const GridRun& g, int jobs) {
  const ThreadPlan plan = plan_threads(g.options.threads, jobs, user_omp_env(), cpu_budget());
  static std::once_flag interop_once;
  std::call_once(interop_once, [] {
    try {
      at::set_num_interop_threads(1);
    } catch (const std::exception&) {  // the pool already started (a library used it): leave it
    }
  });
  at::set_num_threads(plan.total);
  return {plan.total, plan.per_cell, jobs, plan.why};
}

}  // namespace

RunSummary run_grid(const RunOptions& options, Progress& progress) {
  KeepThreads keep_threads;
  // Everything that can be checked is checked before anything is written.
  const Grid grid = load_grid(options.grid_path);
  check_run_options(options, grid.cells.size());
  check_cells(grid);
  storage::check_database_path(options.db_path);
  GridRun g{options, progress, grid};
  resolve_devices(g);
  const fs::path db_dir = fs::absolute(options.db_path).parent_path();
  g.checkpoint_dir = options.checkpoint_dir.empty() ? (db_dir / "checkpoints").string() : options.checkpoint_dir;
  if (!options.dry_run) {  // a dry run writes nothing: a read-only place is fine
    check_folder(db_dir.string(), options.db_path);
    check_folder(g.checkpoint_dir, "checkpoint folder " + g.checkpoint_dir);
  }
  g.summary.cells = static_cast<int>(grid.cells.size());
  const auto mine = shard_cells(grid.cells.size(), options.shard_index, options.shard_count);
  g.summary.selected = static_cast<int>(mine.size());

  const auto on_record = runs_on_record(options.db_path);
  std::vector<size_t> todo;
  for (size_t i : mine) {
    const auto it = on_record.find(grid.cells[i].key);
    const bool done = it != on_record.end() && is_done(it->second);
    if (done) ++g.summary.skipped;
    if (options.dry_run)
      g.summary.plan.push_back(
          {g.ref(i), planned_state(it == on_record.end() ? std::nullopt : std::optional(it->second))});
    else if (done)
      progress.cell_skipped(g.ref(i), it->second.status);
    else
      todo.push_back(i);
  }
  if (options.dry_run) return g.summary;

  // Datasets load before the database is opened: a damaged data file stops the grid with
  // nothing stored.
  const int jobs = std::min<int>(options.jobs, static_cast<int>(std::max<size_t>(todo.size(), 1)));
  const ThreadsChosen threads = use_threads(g, jobs);
  g.threads_per_cell = threads.per_cell;
  load_datasets(g, todo, db_dir.string());
  if (!todo.empty()) progress.threads_chosen(threads);  // after the datasets: bad input stays one line
  g.writer = std::make_unique<storage::Writer>(std::make_unique<storage::Store>(options.db_path));
  g.host = host_name();
  g.pid = getpid();
  PoolOptions pool;
  pool.jobs = options.jobs;
  pool.threads_per_job = g.threads_per_cell;
  pool.heartbeat_seconds = options.heartbeat_seconds;
  pool.tick_seconds = options.tick_seconds;
  try {
    run_pool(
        todo, pool, [&g](size_t i) { run_cell(g, i); }, [] { return stop_requested(); }, g.active,
        [&g, jobs] { g.progress.tick(jobs); });
  } catch (...) {
    progress.done();
    g.writer->sync();
    throw;
  }
  progress.done();
  g.writer->sync();
  return g.summary;
}

}  // namespace htga::experiments

#include "experiments/runner.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <torch/version.h>
#include <unistd.h>

#include <cerrno>
#include <cfloat>
#include <cstring>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>

#include "experiments/cell_builder.h"
#include "experiments/checkpoint.h"
#include "experiments/error.h"
#include "experiments/grid.h"
#include "experiments/models/zoo.h"
#include "experiments/scheduler.h"
#include "experiments/torch_compat.h"
#include "experiments/trainer.h"
#include "htga_git_commit.h"
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

/// The options of the run itself, before anything else.
void check_run_options(const RunOptions& o, size_t cells) {
  if (o.shard_count < 1 || o.shard_index < 0 || o.shard_index >= o.shard_count)
    throw InputError(fmt::format("--shard {}/{}: want I/N with 0 <= I < N", o.shard_index, o.shard_count));
  if (o.jobs < 1) throw InputError(fmt::format("--jobs {}: want 1 or more", o.jobs));
  if (o.flush_every < 1) throw InputError(fmt::format("--flush-every {}: want 1 or more", o.flush_every));
  if (!(o.heartbeat_seconds > 0)) throw InputError(fmt::format("heartbeat interval {} s: want more than 0", o.heartbeat_seconds));
  // Two missed heartbeats at least, so that a busy but live process is not taken over.
  if (!(o.stale_after_s >= 3 * o.heartbeat_seconds))
    throw InputError(fmt::format("--stale-after {:g}: want at least {:g} seconds (3 heartbeats of {:g} s)",
                                 o.stale_after_s, 3 * o.heartbeat_seconds, o.heartbeat_seconds));
  if (static_cast<int64_t>(cells) > o.max_cells && !o.yes && !o.dry_run)
    throw InputError(fmt::format("{}: {} cells, more than --max-cells {}; pass --yes to run them all", o.grid_path,
                                 cells, o.max_cells));
}

/// Settings that the registry's ranges let through but no cell could train with, found before
/// anything is written: each message names the grid file and the cell.
void check_cells(const Grid& grid) {
  for (const Cell& c : grid.cells) {
    const CellSettings s = build_settings(c);
    const std::string where = grid.source + ": " + c.label;
    if (!(s.optimizer.lr <= FLT_MAX))
      throw InputError(fmt::format("{}: optimizer lr {:g} overflows float32", where, s.optimizer.lr));
    if (!s.optimizer.htga) continue;
    if (s.train.alpha.every == 0)
      throw InputError(grid.source + ": /defaults/alpha_every: htga needs alpha_hat; alpha_every 0 turns it off");
    try {
      optimizers::check_options(*s.optimizer.htga);
    } catch (const std::invalid_argument& e) {
      throw InputError(where + ": optimizer: " + e.what());
    }
  }
}

/// A folder htga will write into (the database's, the checkpoints') must be one or be
/// creatable: found before anything is written, not after an epoch of training. A folder that
/// does not exist yet is made and removed again, which leaves nothing behind. Throws InputError
/// whose message starts with `who`.
void check_folder(const std::string& dir, const std::string& who) {
  std::error_code ec;
  const fs::path target = fs::absolute(dir);
  fs::path existing = target;
  while (!fs::exists(existing, ec) && existing != existing.parent_path()) existing = existing.parent_path();
  if (!fs::is_directory(existing, ec))
    throw InputError(who + ": cannot create folder " + target.string() + ": " + existing.string() + " is not a folder");
  if (existing == target) {
    if (::access(target.c_str(), W_OK | X_OK) != 0)
      throw InputError(who + ": cannot write in folder " + target.string() + ": " + std::strerror(errno));
    return;
  }
  fs::create_directories(target, ec);
  if (ec) throw InputError(who + ": cannot create folder " + target.string() + ": " + ec.message());
  fs::path top = target;  // the outermost folder made here
  while (top.parent_path() != existing) top = top.parent_path();
  fs::remove_all(top, ec);
}

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

bool is_done(const storage::RunRecord& r) { return r.status == "finished" || r.status == "diverged"; }

/// Everything one grid run shares among its cells.
struct GridRun {
  const RunOptions& options;
  Progress& progress;
  const Grid& grid;
  std::map<std::string, torch::Device> devices;             // by name
  std::map<std::string, data::Dataset> datasets;            // by dataset config @ device
  std::unique_ptr<storage::Writer> writer;
  std::string checkpoint_dir, host;
  int64_t pid = 0;
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

void resolve_devices(GridRun& g) {
  for (const Cell& c : g.grid.cells) {
    const std::string name = g.options.device.empty() ? c.config["train"]["device"].get<std::string>() : g.options.device;
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
      const std::string msg = e.what();
      throw InputError(g.grid.source + ": " + c.label + ": model " + c.config["model"]["name"].get<std::string>() +
                       ": " + msg.substr(0, msg.find('\n')));
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
    g.progress.dataset_loaded({ds.name, g.device_of(c).str(), ds.cache_note, ds.train_x.size(0), ds.val_x.size(0),
                               ds.test_x.size(0), ds.load_seconds});
    g.datasets.emplace(g.data_key(c), std::move(ds));
  }
  check_models(g, todo);
  for (auto& write : cache_writes) write();
  // Cells train on streams of their own (compat::ThreadStream): the uploads finish first.
  for (const auto& [name, device] : g.devices) compat::synchronize(device);
}

storage::RunRecord record_of(const GridRun& g, const Cell& c, const data::Dataset& ds) {
  storage::RunRecord rec;
  rec.cell_key = c.key;
  rec.grid = g.grid.name;
  rec.config_json = c.config.dump();
  rec.dataset = c.config["dataset"]["name"];
  rec.model = c.config["model"]["name"];
  rec.optimizer = c.config["optimizer"]["name"];
  rec.seed = c.config["seed"];
  rec.device = g.device_of(c).str();
  rec.htga_version = HTGA_VERSION;
  rec.torch_version = TORCH_VERSION;
  rec.git_commit = HTGA_GIT_COMMIT;
  rec.host = g.host;
  rec.pid = g.pid;
  rec.metric = ds.metric;
  return rec;
}

const char* status_text(CellStatus s) {
  switch (s) {
    case CellStatus::kFinished: return "finished";
    case CellStatus::kDiverged: return "diverged";
    case CellStatus::kInterrupted: return "interrupted";
    case CellStatus::kLost: return "lost";
  }
  return "failed";
}

/// A cell claimed by this process: its writer and, once built, its trainer.
struct ClaimedCell {
  storage::Claim claim;
  std::unique_ptr<CellWriter> out;
  std::string note;  // what the run's record should say besides its result
};

/// Claims cell i (again: `fresh` drops what an earlier attempt left). False: another process has it.
bool claim(GridRun& g, size_t i, const storage::RunRecord& rec, bool fresh, ClaimedCell& cell) {
  cell.claim = claim_cell(*g.writer, rec, g.options.stale_after_s, /*resume=*/!fresh);
  if (cell.claim.run_id == 0) return false;
  cell.out = std::make_unique<CellWriter>(*g.writer, cell.claim.fence());
  return true;
}

/// The trainer of a claimed cell, resumed from its checkpoint when there is a usable one; an
/// unusable checkpoint is set aside and the cell claimed afresh.
std::unique_ptr<Trainer> start(GridRun& g, size_t i, const storage::RunRecord& rec, ClaimedCell& cell) {
  const Cell& c = g.grid.cells[i];
  const CellSettings settings = build_settings(c);
  const auto& ds = g.datasets.at(g.data_key(c));
  TrainerOptions topts;
  topts.flush_every = g.options.flush_every;
  topts.flush_seconds = g.options.flush_seconds;
  topts.checkpoint_dir = g.checkpoint_dir;
  topts.stop = [] { return stop_requested(); };
  topts.on_flush = [&g, i](int64_t step, int64_t epoch, double loss, double alpha) {
    g.progress.cell_tick(g.ref(i), {step, epoch, loss, alpha});
  };
  auto trainer = std::make_unique<Trainer>(settings, ds, g.device_of(c), *cell.out, topts);
  if (!cell.claim.resumed) return trainer;
  try {
    trainer->resume(cell.claim.checkpoint, cell.claim.from_epoch - 1, cell.claim.from_step);
    g.count(&RunSummary::resumed);
    return trainer;
  } catch (const CheckpointError& e) {
    const std::string aside = set_aside(cell.claim.checkpoint);
    cell.note = fmt::format("restarted from the start: {}{}", e.what(),
                            aside.empty() ? std::string() : "; set aside as " + aside);
    g.progress.cell_checkpoint_bad(g.ref(i), cell.note);
    g.count(&RunSummary::restarted);
  }
  cell.out->sync();
  if (!claim(g, i, rec, /*fresh=*/true, cell)) return nullptr;
  return std::make_unique<Trainer>(settings, ds, g.device_of(c), *cell.out, topts);
}

/// Records how the cell ended (unless another process holds it now) and removes a checkpoint
/// that has served its purpose.
void record_result(GridRun& g, ClaimedCell& cell, storage::RunResult result) {
  const bool done = result.status == "finished" || result.status == "diverged";
  if (!cell.note.empty() && result.error.empty()) result.error = cell.note;
  cell.out->sync();
  if (cell.out->lost()) return;
  const storage::Fence fence = cell.claim.fence();
  g.writer->call([&](storage::Store& s) {
    try {
      s.finish_run(fence, result);
    } catch (const storage::LostClaim&) {
      return;
    }
    if (!done) return;
    const auto r = s.run(fence.run_id);
    std::error_code ec;
    if (r && !r->checkpoint.empty()) fs::remove(r->checkpoint, ec);
    s.clear_checkpoint(fence);
  });
}

CellEnded ended_of(const storage::RunResult& r, const CellOutcome::Timing& t) {
  CellEnded e;
  e.status = r.status;
  e.error = r.error;
  e.metric = r.metric;
  e.test_acc = r.test_acc;
  e.test_loss = r.test_loss;
  e.test_metric = r.test_metric;
  e.steps = r.steps;
  e.seconds = r.train_time_s;
  e.timed_steps = t.steps;
  e.step_s = t.step_s;
  e.alpha_s = t.alpha_s;
  e.log_s = t.log_s;
  e.eval_s = t.eval_s;
  e.note = t.note;
  return e;
}

/// Trains a claimed cell and records its result; any error fails this cell only.
void train_claimed(GridRun& g, size_t i, const storage::RunRecord& rec, ClaimedCell& cell) {
  const Cell& c = g.grid.cells[i];
  const auto t0 = std::chrono::steady_clock::now();
  storage::RunResult result;
  result.metric = rec.metric;
  CellOutcome outcome;
  try {
    compat::ThreadStream stream(g.device_of(c));  // cells side by side on one GPU overlap
    auto trainer = start(g, i, rec, cell);
    if (!trainer) {
      g.count(&RunSummary::busy);
      g.progress.cell_busy(g.ref(i));
      return;
    }
    g.active.add(i, cell.out.get());
    const auto epochs = c.config["train"]["epochs"].get<int64_t>();
    const auto batch = c.config["train"]["batch_size"].get<int64_t>();
    const int64_t rows = g.datasets.at(g.data_key(c)).train_x.size(0);
    g.progress.cell_started(g.ref(i), {cell.claim.run_id, epochs, epochs * ((rows + batch - 1) / batch),
                                       cell.claim.from_epoch, cell.claim.from_step, cell.claim.resumed});
    outcome = trainer->run();
    result.status = status_text(outcome.status);
    result.error = outcome.error;
    result.steps = outcome.steps;
    if (outcome.status == CellStatus::kFinished || outcome.status == CellStatus::kDiverged) {
      result.test_acc = outcome.test_acc;
      result.test_loss = outcome.test_loss;
      result.train_acc = outcome.train_acc;
      result.val_metric = outcome.val_metric;
      result.test_metric = outcome.test_metric;
    }
  } catch (const std::exception& e) {
    const std::string msg = e.what();
    result.status = "failed";
    result.error = msg.substr(0, msg.find('\n'));  // c10 errors append a backtrace
  }
  g.active.remove(i);
  result.train_time_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (result.status != "lost") {
    try {
      record_result(g, cell, result);
    } catch (const std::exception& e) {
      // The database itself fails (disk full, removed): the run stays `running` and is taken
      // over once its heartbeat is stale.
      result.status = "failed";
      result.error = std::string("writing results: ") + e.what();
    }
  }
  if (cell.out && cell.out->lost()) result.status = "lost";
  if (result.status == "lost") result.error = "taken over by another process (its result stands)";
  static const std::map<std::string, int RunSummary::*> fields{
      {"finished", &RunSummary::finished}, {"diverged", &RunSummary::diverged}, {"interrupted", &RunSummary::interrupted},
      {"failed", &RunSummary::failed},     {"lost", &RunSummary::lost}};
  g.count(fields.at(result.status));
  g.progress.cell_ended(g.ref(i), ended_of(result, outcome.time));
}

void run_cell(GridRun& g, size_t i) {
  const Cell& c = g.grid.cells[i];
  const auto rec = record_of(g, c, g.datasets.at(g.data_key(c)));
  ClaimedCell cell;
  if (!claim(g, i, rec, /*fresh=*/false, cell)) {
    if (!cell.claim.done.empty()) {  // finished by another process since this one looked
      g.count(&RunSummary::skipped);
      g.progress.cell_skipped(g.ref(i), cell.claim.done);
      return;
    }
    g.count(&RunSummary::busy);
    g.progress.cell_busy(g.ref(i));
    return;
  }
  train_claimed(g, i, rec, cell);
  if (cell.out) cell.out->sync();
}

}  // namespace

RunSummary run_grid(const RunOptions& options, Progress& progress) {
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
      g.summary.plan.push_back({g.ref(i), planned_state(it == on_record.end() ? std::nullopt
                                                                               : std::optional(it->second))});
    else if (done)
      progress.cell_skipped(g.ref(i), it->second.status);
    else
      todo.push_back(i);
  }
  if (options.dry_run) return g.summary;

  // Datasets load before the database is opened: a damaged data file stops the grid with
  // nothing stored.
  load_datasets(g, todo, db_dir.string());
  g.writer = std::make_unique<storage::Writer>(std::make_unique<storage::Store>(options.db_path));
  g.host = host_name();
  g.pid = getpid();
  PoolOptions pool;
  pool.jobs = options.jobs;
  pool.heartbeat_seconds = options.heartbeat_seconds;
  pool.tick_seconds = options.tick_seconds;
  const int jobs = std::min<int>(options.jobs, static_cast<int>(std::max<size_t>(todo.size(), 1)));
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

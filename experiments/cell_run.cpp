#include <fmt/format.h>
#include <torch/version.h>

#include <chrono>
#include <filesystem>
#include <map>

#include "experiments/cell_builder.h"
#include "experiments/checkpoint.h"
#include "experiments/grid_run.h"
#include "experiments/torch_compat.h"
#include "experiments/trainer.h"
#include "htga_git_commit.h"

namespace htga::experiments {

namespace fs = std::filesystem;

namespace {

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
  rec.threads = g.threads_per_cell;
  rec.metric = ds.metric;
  return rec;
}

const char* status_text(CellStatus s) {
  switch (s) {
    case CellStatus::kFinished:
      return "finished";
    case CellStatus::kDiverged:
      return "diverged";
    case CellStatus::kInterrupted:
      return "interrupted";
    case CellStatus::kLost:
      return "lost";
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
  const bool done = storage::is_done(result.status);
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
    const int64_t rows = g.datasets.at(g.data_key(c)).train_size();
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
  static const std::map<std::string, int RunSummary::*> fields{{"finished", &RunSummary::finished},
                                                               {"diverged", &RunSummary::diverged},
                                                               {"interrupted", &RunSummary::interrupted},
                                                               {"failed", &RunSummary::failed},
                                                               {"lost", &RunSummary::lost}};
  g.count(fields.at(result.status));
  g.progress.cell_ended(g.ref(i), ended_of(result, outcome.time));
}

}  // namespace

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

}  // namespace htga::experiments

#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/progress.h"
#include "cli/slurm.h"
#include "experiments/error.h"

namespace htga::cli {

namespace {

/// The closing line of a grid run.
std::string summary_line(const experiments::RunOptions& options, const experiments::RunSummary& s,
                         const std::string& shard) {
  std::string line = fmt::format("done: {} cells{}: {} trained, {} skipped (done before), {} diverged, {} failed",
                                 s.cells, shard, s.finished, s.skipped, s.diverged, s.failed);
  if (s.resumed) line += fmt::format(", {} resumed from a checkpoint", s.resumed);
  if (s.restarted) line += fmt::format(", {} restarted (checkpoint unusable, set aside)", s.restarted);
  if (s.busy) line += fmt::format(", {} left to another live process", s.busy);
  if (s.lost) line += fmt::format(", {} taken over by another process", s.lost);
  if (s.interrupted) line += fmt::format(", {} interrupted (run again to resume)", s.interrupted);
  return line + "; db " + options.db_path;
}

}  // namespace

int run_run(const experiments::RunOptions& options, const RunView& view, std::ostream& out, std::ostream& err) {
  std::unique_ptr<experiments::Progress> progress;
  if (view.quiet)
    progress = std::make_unique<QuietProgress>(err);
  else if (view.live)
    progress = std::make_unique<LiveProgress>(err);
  else
    progress = std::make_unique<LineProgress>(err, view.progress_every_s);
  auto s = experiments::run_grid(options, *progress);
  const std::string shard = options.shard_count > 1 ? fmt::format(" (shard {}/{}: {} cells)", options.shard_index,
                                                                  options.shard_count, s.selected)
                                                    : "";
  if (options.dry_run) {  // a listing: stdout
    for (const auto& p : s.plan)
      out << fmt::format("[{}/{}] {} {} ({})", p.cell.index + 1, p.cell.total, p.cell.key, p.cell.label, p.state)
          << "\n";
    out << fmt::format("{} cells{}, {} already done, {} to run", s.cells, shard, s.skipped, s.selected - s.skipped)
        << std::endl;
    return 0;
  }
  if (!view.quiet) err << summary_line(options, s, shard) << std::endl;
  if (s.interrupted > 0 || experiments::stop_requested()) return 130;
  return s.failed > 0 ? 1 : 0;
}

namespace {
/// "I/N" -> (I, N).
std::pair<int, int> parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  auto number = [&](const std::string& part) {
    errno = 0;
    char* end = nullptr;
    const long v = std::strtol(part.c_str(), &end, 10);
    if (part.empty() || *end != '\0' || errno == ERANGE || v < 0 || v > 1000000)
      throw InputError("--shard " + text + ": want I/N with 0 <= I < N <= 1000000, e.g. 0/4");
    return static_cast<int>(v);
  };
  if (slash == std::string::npos) throw InputError("--shard " + text + ": want I/N with 0 <= I < N, e.g. 0/4");
  const int i = number(text.substr(0, slash)), n = number(text.substr(slash + 1));
  if (n < 1 || i >= n) throw InputError("--shard " + text + ": want I/N with 0 <= I < N, e.g. 0/4");
  return {i, n};
}
}  // namespace

void setup_run(CLI::App& app, int& exit_code) {
  auto* run = app.add_subcommand("run", "Run experiments");
  run->require_subcommand(1);
  auto opts = std::make_shared<experiments::RunOptions>();
  auto view = std::make_shared<RunView>();
  auto shard = std::make_shared<std::string>();
  auto* grid = run->add_subcommand(
      "grid",
      "Run every cell of a grid file not yet finished in the database. Finished and diverged cells are "
      "skipped, failed and interrupted ones re-run (from their last checkpoint), cells running in another "
      "process are left to it unless its heartbeat is stale. Ctrl-C stops after the current step (exit 130); "
      "a second Ctrl-C quits at once.");
  grid->add_option("file", opts->grid_path, "Grid JSON file (see experiments/grids/)")->required();
  grid->add_option("--db", opts->db_path, "Result database")->capture_default_str();
  grid->add_flag("--dry-run", opts->dry_run, "List the cells and whether they are done (stdout); train nothing");
  grid->add_option("--device", opts->device, "Override the grid's device: auto, cpu, cuda, cuda:N");
  grid->add_option("-j,--jobs", opts->jobs, "Cells trained at once (threads sharing the loaded datasets)")
      ->check(integer_in(1, 1024))
      ->capture_default_str();
  grid->add_option("--threads", opts->threads,
                   "Intra-op threads in all, divided among --jobs (default: OMP_NUM_THREADS if set, else every CPU "
                   "this process may use: its affinity mask and cgroup quota)")
      ->check(integer_in(1, 4096));
  grid->add_option("--shard", *shard, "Run only the cells whose index mod N is I (I/N, for job arrays)");
  grid->add_option("--max-cells", opts->max_cells, "Refuse larger grids unless --yes")
      ->check(integer_in(0, INT64_MAX))
      ->capture_default_str();
  grid->add_flag("-y,--yes", opts->yes, "Run a grid larger than --max-cells");
  grid->add_option("--stale-after", opts->stale_after_s,
                   "Seconds without a heartbeat after which a `running` cell is taken over (at least 3 "
                   "heartbeats)")
      ->check(positive_number())
      ->capture_default_str();
  grid->add_option("--heartbeat", opts->heartbeat_seconds, "Seconds between heartbeats of the cells in training")
      ->check(positive_number())
      ->capture_default_str();
  grid->add_option("--checkpoint-dir", opts->checkpoint_dir, "Checkpoint folder (default: checkpoints/ beside --db)");
  grid->add_option("--flush-every", opts->flush_every, "Steps buffered before a database commit")
      ->check(integer_in(1, 1 << 20))
      ->capture_default_str();
  grid->add_option("--progress-every", view->progress_every_s,
                   "When stderr is not a terminal: seconds between progress lines of the cells in training")
      ->check(positive_number())
      ->capture_default_str();
  grid->add_flag("-q,--quiet", view->quiet, "No progress lines (failures are still reported)");
  auto task = std::make_shared<TaskEnd>();
  grid->add_option("--publish", task->publish,
                   "When the run ends, however it ends, copy the database here atomically (job arrays whose --db "
                   "is on a node's local disk; htga slurm submit uses it)");
  grid->add_option("--requeue-max", task->requeue_max,
                   "In a Slurm job stopped by USR2 or SIGTERM: requeue it (scontrol requeue) while "
                   "SLURM_RESTART_COUNT is below this")
      ->check(integer_in(0, 1000));
  grid->callback([opts, view, shard, task, &exit_code]() {
    if (!shard->empty()) std::tie(opts->shard_index, opts->shard_count) = parse_shard(*shard);
    view->live = !view->quiet && !opts->dry_run && isatty(fileno(stderr));
    if (view->live) opts->tick_seconds = 0.5;
    if (opts->dry_run) {
      exit_code = run_run(*opts, *view, std::cout, std::cerr);
      return;
    }
    try {
      exit_code = run_run(*opts, *view, std::cout, std::cerr);
    } catch (...) {
      end_task(*task, opts->db_path, std::cerr);
      throw;
    }
    end_task(*task, opts->db_path, std::cerr);
  });
}

}  // namespace htga::cli

#include "cli/slurm.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "cli/options.h"
#include "experiments/error.h"
#include "experiments/grid.h"
#include "experiments/stop.h"
#include "storage/merge.h"
#include "storage/store.h"

extern char** environ;

namespace htga::cli {

namespace fs = std::filesystem;
using nlohmann::json;

int run_command(const std::vector<std::string>& argv, std::string* output, bool with_stderr) {
  int fds[2];
  if (pipe(fds) != 0) return 127;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  if (with_stderr) posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; rc == 0 && (n = read(fds[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  if (output) *output = text;
  if (rc != 0) return 127;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

namespace {

/// The text in single quotes for bash.
std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string self_path() {
  std::error_code ec;
  const auto p = fs::canonical("/proc/self/exe", ec);
  return ec ? std::string("htga") : p.string();
}

/// Slurm's tool, or InputError saying it is missing.
std::string slurm_output(const std::vector<std::string>& argv) {
  std::string out;
  const int rc = run_command(argv, &out);
  if (rc == 127) throw InputError(argv[0] + ": not found; htga slurm needs Slurm's tools on the PATH (a login node)");
  if (rc != 0) throw InputError(fmt::format("{} failed ({}): {}", argv[0], rc, out.substr(0, out.find('\n'))));
  return out;
}

/// MaxArraySize from `scontrol show config`.
int max_array_size() {
  std::istringstream in(slurm_output({"scontrol", "show", "config"}));
  for (std::string line; std::getline(in, line);)
    if (line.rfind("MaxArraySize", 0) == 0) return std::atoi(line.substr(line.find('=') + 1).c_str());
  return 1001;  // Slurm's default
}

std::string sbatch_lines(const SlurmSubmitOptions& o) {
  std::string s;
  if (!o.partition.empty()) s += "#SBATCH --partition=" + o.partition + "\n";
  if (!o.time.empty()) s += "#SBATCH --time=" + o.time + "\n";
  if (!o.gres.empty()) s += "#SBATCH --gres=" + o.gres + "\n";
  if (o.cpus > 0) s += fmt::format("#SBATCH --cpus-per-task={}\n", o.cpus);
  if (!o.mem.empty()) s += "#SBATCH --mem=" + o.mem + "\n";
  for (const auto& a : o.sbatch_args) s += "#SBATCH " + a + "\n";
  return s;
}

struct Paths {
  std::string dir, grid, htga, name;
};

std::string array_script(const SlurmSubmitOptions& o, const Paths& p, const std::string& indices) {
  const std::string limit = o.max_running > 0 ? fmt::format("%{}", o.max_running) : "";
  return fmt::format(R"sh(#!/bin/bash
#SBATCH --job-name=htga-{name}
#SBATCH --array={indices}{limit}
#SBATCH --output={dir}/logs/task-%a.log
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --signal=B:USR2@{signal}
{extra}# Written by htga slurm submit. Task i runs shard i/{tasks} of the grid on the node's local
# disk; whenever it stops, htga publishes its database to {dir}/shards/ (atomically), and after
# Slurm's USR2 before the time limit (or a SIGTERM) it requeues the task, at most {requeues}
# times. A requeued task starts from its published database and its checkpoints.
set -eu
i=$SLURM_ARRAY_TASK_ID
scratch="${{SLURM_TMPDIR:-${{TMPDIR:-/tmp}}}}/htga-$SLURM_ARRAY_JOB_ID-$i"
mkdir -p "$scratch"
shared={dir_q}/shards/shard-$i.db
rm -f "$scratch/shard-$i.db" "$scratch/shard-$i.db-wal" "$scratch/shard-$i.db-shm"  # another submission's
if [ -f "$shared" ]; then cp "$shared" "$scratch/shard-$i.db"; fi
echo "htga task $i of {tasks}, restart ${{SLURM_RESTART_COUNT:-0}}, on $(hostname), $(date)"
exec {htga} run grid {grid} --shard "$i/{tasks}" --db "$scratch/shard-$i.db" \
  --checkpoint-dir {dir_q}/checkpoints --publish "$shared" --requeue-max {requeues}
)sh",
                     fmt::arg("name", p.name), fmt::arg("indices", indices), fmt::arg("limit", limit),
                     fmt::arg("dir", p.dir), fmt::arg("dir_q", quote(p.dir)), fmt::arg("signal", o.signal_before_s),
                     fmt::arg("extra", sbatch_lines(o)), fmt::arg("tasks", o.tasks),
                     fmt::arg("requeues", o.max_requeues), fmt::arg("htga", quote(p.htga)),
                     fmt::arg("grid", quote(p.grid)));
}

std::string merge_script(const SlurmSubmitOptions& o, const Paths& p) {
  std::string extra;
  if (!o.partition.empty()) extra += "#SBATCH --partition=" + o.partition + "\n";
  return fmt::format(R"sh(#!/bin/bash
#SBATCH --job-name=htga-{name}-merge
#SBATCH --output={dir}/logs/merge.log
#SBATCH --open-mode=append
{extra}# Written by htga slurm submit: runs after every task of the array, however they ended.
set -eu
shopt -s nullglob
shards=({dir_q}/shards/shard-*.db)
if [ ${{#shards[@]}} -eq 0 ]; then echo "htga slurm: no shard database in {dir}/shards"; exit 1; fi
{htga} merge {dir_q}/htga.db "${{shards[@]}}"
# The cells no shard finished (htga slurm submit --resume {dir} submits only their shards).
{htga} run grid {grid} --db {dir_q}/htga.db --dry-run | grep -v '(finished)' | grep -v '(diverged)' || true
)sh",
                     fmt::arg("name", p.name), fmt::arg("dir", p.dir), fmt::arg("dir_q", quote(p.dir)),
                     fmt::arg("extra", extra), fmt::arg("htga", quote(p.htga)), fmt::arg("grid", quote(p.grid)));
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out.flush()) throw InputError(path + ": cannot write");
}

/// Adds the keys of the cells done (finished or diverged) in the database at `db` to `done`.
void add_done_cells(const std::string& db, std::set<std::string>& done) {
  storage::Store store(db, storage::Store::Mode::kReadOnly);
  for (const auto& r : store.runs())
    if (storage::is_done(r.status)) done.insert(r.cell_key);
}

/// The shard indices that still have a cell not finished (nor diverged) in `db`.
std::vector<int> unfinished_shards(const experiments::Grid& grid, int tasks, const std::string& db) {
  std::set<std::string> done;
  if (fs::exists(db)) add_done_cells(db, done);
  std::set<int> shards;
  for (size_t i = 0; i < grid.cells.size(); ++i)
    if (!done.count(grid.cells[i].key)) shards.insert(static_cast<int>(i % static_cast<size_t>(tasks)));
  return {shards.begin(), shards.end()};
}

std::string join_indices(const std::vector<int>& v) {
  std::string s;
  for (int i : v) s += (s.empty() ? "" : ",") + std::to_string(i);
  return s;
}

/// sbatch --parsable: the job id (without a cluster name).
std::string submit(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"sbatch", "--parsable"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string out = slurm_output(argv);
  out = out.substr(0, out.find_first_of(";\n"));
  if (out.empty() || out.find_first_not_of("0123456789") != std::string::npos)
    throw InputError("sbatch said \"" + out + "\", not a job id");
  return out;
}

/// Resolves and checks the options (the grid, the tasks, the folder); `resume` reads them from
/// the folder's jobs.json.
Paths resolve(SlurmSubmitOptions& o) {
  Paths p;
  p.dir = fs::absolute(o.out_dir).lexically_normal().string();
  if (o.resume) {
    std::ifstream in(p.dir + "/jobs.json");
    if (!in) throw InputError(p.dir + "/jobs.json: no submission to resume there");
    json j;
    try {
      j = json::parse(in);
      o.grid = j.at("grid").get<std::string>();
      o.tasks = j.at("tasks").get<int>();
    } catch (const std::exception& e) {
      throw InputError(p.dir + "/jobs.json: damaged (" + std::string(e.what()) + ")");
    }
  }
  if (o.grid.empty()) throw InputError("htga slurm submit: a grid file is needed (or --resume DIR)");
  p.grid = fs::absolute(o.grid).lexically_normal().string();
  p.htga = self_path();
  return p;
}

}  // namespace

int run_slurm_submit(const SlurmSubmitOptions& options, std::ostream& out) {
  SlurmSubmitOptions o = options;
  const Paths base = resolve(o);
  Paths p = base;
  const experiments::Grid grid = experiments::load_grid(p.grid);
  p.name = grid.name;
  if (o.tasks < 1) throw InputError("--tasks: want 1 or more");
  if (static_cast<size_t>(o.tasks) > grid.cells.size())
    throw InputError(fmt::format("--tasks {}: more than the grid's {} cells ({})", o.tasks, grid.cells.size(), p.grid));
  const std::vector<int> shards = o.resume ? unfinished_shards(grid, o.tasks, p.dir + "/htga.db") : std::vector<int>{};
  if (o.resume && shards.empty()) {
    out << fmt::format("nothing to resume: all {} cells of {} are finished in {}/htga.db\n", grid.cells.size(), p.grid,
                       p.dir);
    return 0;
  }
  const std::string indices = o.resume ? join_indices(shards) : fmt::format("0-{}", o.tasks - 1);
  const std::string array = array_script(o, p, indices), merge = merge_script(o, p);
  if (o.dry_run) {
    out << "# " << p.dir << "/array.sbatch\n" << array << "\n# " << p.dir << "/merge.sbatch\n" << merge;
    return 0;
  }
  const int max_size = max_array_size();
  if (o.tasks > max_size)
    throw InputError(
        fmt::format("--tasks {}: more than the cluster's MaxArraySize {} (scontrol show config)", o.tasks, max_size));
  for (const char* sub : {"", "/logs", "/shards", "/checkpoints"}) fs::create_directories(p.dir + sub);
  write_text(p.dir + "/array.sbatch", array);
  write_text(p.dir + "/merge.sbatch", merge);
  const std::string array_id = submit({p.dir + "/array.sbatch"});
  const std::string merge_id = submit({"--dependency=afterany:" + array_id, p.dir + "/merge.sbatch"});
  json jobs{{"grid", p.grid}, {"tasks", o.tasks}, {"array", array_id}, {"merge", merge_id}, {"indices", indices}};
  write_text(p.dir + "/jobs.json", jobs.dump(1) + "\n");
  out << fmt::format(
      "submitted {} task{} of {} ({} cells) as array job {} (tasks {}), merge job {}; "
      "htga slurm status {}\n",
      o.resume ? shards.size() : static_cast<size_t>(o.tasks), o.tasks == 1 ? "" : "s", p.grid, grid.cells.size(),
      array_id, indices, merge_id, p.dir);
  return 0;
}

int run_slurm_status(const std::string& out_dir, std::ostream& out) {
  const std::string dir = fs::absolute(out_dir).lexically_normal().string();
  std::ifstream in(dir + "/jobs.json");
  if (!in) throw InputError(dir + "/jobs.json: no submission there (htga slurm submit --out " + out_dir + ")");
  json j;
  try {
    j = json::parse(in);
  } catch (const std::exception& e) {
    throw InputError(dir + "/jobs.json: damaged (" + std::string(e.what()) + ")");
  }
  const std::string array = j.value("array", ""), merge = j.value("merge", "");
  const std::string queue = slurm_output({"squeue", "-h", "-j", array + "," + merge, "-o", "%i %T %r"});
  out << (queue.empty() ? "no job of this submission is queued or running\n" : queue);
  std::set<std::string> done;
  int files = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir + "/shards", ec))
    if (e.path().extension() == ".db") {
      ++files;
      add_done_cells(e.path().string(), done);
    }
  out << fmt::format("{} cells finished in {} shard database{} (grid {}, {} tasks){}\n", done.size(), files,
                     files == 1 ? "" : "s", j.value("grid", std::string("?")), j.value("tasks", 0),
                     fs::exists(dir + "/htga.db") ? "; merged: " + dir + "/htga.db" : "");
  return 0;
}

void end_task(const TaskEnd& task, const std::string& db_path, std::ostream& err) {
  if (!task.publish.empty() && fs::exists(db_path)) {
    try {
      storage::publish_copy(db_path, task.publish);
      err << "htga: published " << db_path << " to " << task.publish << std::endl;
    } catch (const std::exception& e) {
      err << "htga: warning: " << e.what() << std::endl;
    }
  }
  const int sig = experiments::stop_signal();
  const char* job = std::getenv("SLURM_JOB_ID");
  if (task.requeue_max <= 0 || !job || (sig != SIGUSR2 && sig != SIGTERM)) return;
  const int restarts = std::atoi(std::getenv("SLURM_RESTART_COUNT") ? std::getenv("SLURM_RESTART_COUNT") : "0");
  if (restarts >= task.requeue_max) {
    err << fmt::format("htga: not requeued: {} requeues already (--requeue-max {})", restarts, task.requeue_max)
        << std::endl;
    return;
  }
  const char* array = std::getenv("SLURM_ARRAY_JOB_ID");
  const char* index = std::getenv("SLURM_ARRAY_TASK_ID");
  const std::string id = array && index ? std::string(array) + "_" + index : std::string(job);
  std::string text;
  const int rc = run_command({"scontrol", "requeue", id}, &text);
  err << (rc == 0 ? fmt::format("htga: requeued {} (restart {} of at most {})", id, restarts + 1, task.requeue_max)
                  : fmt::format("htga: warning: scontrol requeue {} failed ({}): {}", id, rc, text))
      << std::endl;
}

void setup_slurm(CLI::App& app, int& exit_code) {
  auto* slurm = app.add_subcommand("slurm", "Run a grid on a Slurm cluster as a job array");
  slurm->require_subcommand(1);
  auto o = std::make_shared<SlurmSubmitOptions>();
  auto* sub = slurm->add_subcommand(
      "submit",
      "Write DIR/array.sbatch (task i runs shard i/N on local disk, publishes its database to DIR/shards/, "
      "requeues itself before the time limit) and DIR/merge.sbatch (after the array: htga merge DIR/htga.db), "
      "submit both and return");
  sub->add_option("grid", o->grid, "Grid JSON file");
  sub->add_option("--tasks", o->tasks, "Array tasks (shards of the grid)")->check(integer_in(1, 1000000));
  sub->add_option("--out", o->out_dir, "Folder of the scripts, logs, shard databases and the merged htga.db")
      ->check(non_empty_path())
      ->capture_default_str();
  sub->add_option("--partition", o->partition, "sbatch --partition");
  sub->add_option("--time", o->time, "sbatch --time (e.g. 2:00:00)");
  sub->add_option("--gres", o->gres, "sbatch --gres (e.g. gpu:1)");
  sub->add_option("--cpus", o->cpus, "sbatch --cpus-per-task")->check(integer_in(1, 4096));
  sub->add_option("--mem", o->mem, "sbatch --mem (e.g. 8G)");
  sub->add_option("--max-running", o->max_running, "Tasks running at once (%K)")->check(integer_in(1, 1000000));
  sub->add_option("--signal-before", o->signal_before_s, "Seconds before the time limit that Slurm sends USR2")
      ->check(integer_in(10, 86400))
      ->capture_default_str();
  sub->add_option("--max-requeues", o->max_requeues, "Requeues per task after USR2 or SIGTERM")
      ->check(integer_in(0, 1000))
      ->capture_default_str();
  sub->add_option("--sbatch-arg", o->sbatch_args, "An sbatch option as it is (repeatable), e.g. --account=abc");
  sub->add_flag("--dry-run", o->dry_run, "Print the scripts; submit nothing");
  auto resume = std::make_shared<std::string>();
  sub->add_option("--resume", *resume,
                  "DIR of an earlier submission: submit only the shards with cells not finished in DIR/htga.db");
  sub->callback([o, resume, &exit_code] {
    if (!resume->empty()) {
      o->resume = true;
      o->out_dir = *resume;
    }
    exit_code = run_slurm_submit(*o, std::cout);
  });
  auto dir = std::make_shared<std::string>("slurm");
  auto* status = slurm->add_subcommand("status", "The submission's jobs (one squeue call) and its finished cells");
  status->add_option("dir", *dir, "The --out folder of htga slurm submit")->capture_default_str();
  status->callback([dir, &exit_code] { exit_code = run_slurm_status(*dir, std::cout); });
}

}  // namespace htga::cli

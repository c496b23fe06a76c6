#pragma once
// Grids as Slurm job arrays: `htga slurm submit` writes and submits an array (task i runs shard
// i/N on the node's local disk) and a merge job that depends on it, then returns; `htga slurm
// status` asks squeue once and counts finished cells in the shard databases. A task's
// `htga run grid` publishes its database whenever it stops and requeues itself when Slurm's
// warning signal (USR2, or SIGTERM) stopped it. Slurm's own tools (sbatch, squeue, scontrol)
// do the work: nothing keeps running on the login node.

#include <iosfwd>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace htga::cli {

struct SlurmSubmitOptions {
  std::string grid;               // grid file (submit)
  std::string out_dir = "slurm";  // scripts, logs, shards, jobs.json, htga.db
  int tasks = 0;                  // array tasks (= shards)
  std::string partition, time, gres, mem;
  int cpus = 0;                          // --cpus-per-task (0: Slurm's default)
  int max_running = 0;                   // %K: tasks running at once (0: no limit)
  int signal_before_s = 300;             // USR2 this long before the time limit
  int max_requeues = 3;                  // a task requeues itself at most this often
  std::vector<std::string> sbatch_args;  // passed to sbatch as they are
  bool dry_run = false;                  // print the scripts, submit nothing
  bool resume = false;                   // submit only the shards with unfinished cells (out_dir's)
};

/// Writes the scripts and, unless a dry run, submits the array and the merge job. Throws
/// InputError (nothing submitted) for a bad grid or option, more tasks than cells or than the
/// cluster's MaxArraySize, or missing Slurm tools.
int run_slurm_submit(const SlurmSubmitOptions& options, std::ostream& out);

/// One squeue call for the submission's jobs, and the cells finished in its databases.
int run_slurm_status(const std::string& out_dir, std::ostream& out);

/// What a job-array task does when its `htga run grid` ends, however it ends.
struct TaskEnd {
  std::string publish;  // copy the database here (atomically), "" = no
  int requeue_max = 0;  // requeue (scontrol) after USR2/SIGTERM while SLURM_RESTART_COUNT < this
};
void end_task(const TaskEnd& task, const std::string& db_path, std::ostream& err);

void setup_slurm(CLI::App& app, int& exit_code);

/// Runs a command without a shell; returns its exit status (127: could not start) and its
/// standard output (stderr joins it when `with_stderr`).
int run_command(const std::vector<std::string>& argv, std::string* output, bool with_stderr = true);

}  // namespace htga::cli

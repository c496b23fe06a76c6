#pragma once
// How many CPUs this process may use, and how a run divides them among its cells. Torch-free
// (htga_config): the arithmetic is tested on fake /proc and cgroup trees; applying a plan to
// LibTorch is the caller's (experiments/runner.cpp, cli/cmd_estimate.cpp).
//
// A process may use the CPUs of its affinity mask (taskset, Slurm's --cpus-per-task, a
// container's cpuset), lowered by a cgroup CPU quota (Docker's --cpus, Kubernetes' limits):
// cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us / cpu.cfs_period_us`, the smallest along the path
// from the process's cgroup to the root. The machine's total core count is neither.

#include <string>

namespace htga::experiments {

struct CpuBudget {
  int affinity = 1;    // CPUs in the affinity mask
  double quota = 0;    // CPUs the cgroup quota allows (0 = no quota)
  int usable = 1;      // min(affinity, ceil(quota)), at least 1
  std::string source;  // how `usable` was decided, for messages ("affinity mask", "cgroup quota ...")
};

/// The budget of this process. `proc_root` and `cgroup_root` are "/proc" and "/sys/fs/cgroup"
/// except in tests; `affinity` < 1 means: ask the kernel (sched_getaffinity).
CpuBudget cpu_budget(const std::string& proc_root = "/proc", const std::string& cgroup_root = "/sys/fs/cgroup",
                     int affinity = 0);

/// Set (to "1") beside OMP_NUM_THREADS when htga itself set that variable (cli/main.cpp, as it
/// restarts for OpenBLAS): the count is then the CPU budget's, not the user's choice.
constexpr const char* kOmpSetByHtga = "HTGA_OMP_NUM_THREADS_FROM_CPUS";

/// Run once at start-up, before LibTorch reads the environment (cli/main.cpp): when the user's
/// OMP_NUM_THREADS is not a positive number of threads, it is taken out of the environment and
/// kept for plan_threads to reject (LibTorch would otherwise print a warning with a backtrace
/// the first time it counts threads, even when --threads makes the variable irrelevant).
void set_aside_invalid_omp_env();

/// The user's OMP_NUM_THREADS as given (null: unset, or set by htga itself), including one that
/// set_aside_invalid_omp_env took out of the environment.
const char* user_omp_env();

struct ThreadPlan {
  int total = 1;     // intra-op threads of the whole process
  int per_cell = 1;  // intra-op threads of each of the cells trained at once
  std::string why;   // "--threads 4", "OMP_NUM_THREADS=3", "2 CPUs (affinity mask)"
};

/// Divides threads among `jobs` cells. `requested` (--threads, 0 = not given) wins; then the
/// user's OMP_NUM_THREADS (`omp_env`, null or empty = unset; the first number of a list);
/// then the budget. Each cell gets total / jobs threads, at least one. Throws InputError for an
/// OMP_NUM_THREADS that is not a positive number.
ThreadPlan plan_threads(int requested, int jobs, const char* omp_env, const CpuBudget& budget);

}  // namespace htga::experiments

#include "experiments/cpus.h"

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <vector>

#include "experiments/error.h"

namespace htga::experiments {

namespace {

std::string read_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (in) std::getline(in, line);
  return line;
}

/// CPUs of a quota file pair: v2 "max 100000" or "150000 100000"; v1 quota and period in two
/// files (-1 = none). 0 when there is no quota.
double quota_v2(const std::string& dir) {
  std::istringstream in(read_line(dir + "/cpu.max"));
  std::string quota;
  double period = 0;
  if (!(in >> quota >> period) || quota == "max" || period <= 0) return 0;
  char* end = nullptr;
  const double q = std::strtod(quota.c_str(), &end);
  return end && *end == '\0' && q > 0 ? q / period : 0;
}

double quota_v1(const std::string& dir) {
  const std::string q = read_line(dir + "/cpu.cfs_quota_us"), p = read_line(dir + "/cpu.cfs_period_us");
  if (q.empty() || p.empty()) return 0;
  const double quota = std::atof(q.c_str()), period = std::atof(p.c_str());
  return quota > 0 && period > 0 ? quota / period : 0;
}

/// The smallest quota on the way from `path` (the process's cgroup) up to `root`. Inside a
/// container the process's own path is often not mounted: the root's files are then its own.
double smallest_quota(const std::string& root, std::string path, bool v2) {
  double best = 0;
  for (;;) {
    const double q = v2 ? quota_v2(root + path) : quota_v1(root + path);
    if (q > 0 && (best == 0 || q < best)) best = q;
    if (path.empty() || path == "/") break;
    const auto slash = path.find_last_of('/');
    path = slash == std::string::npos ? "" : path.substr(0, slash);
  }
  return best;
}

/// The cgroup quota in CPUs (0 = none), from /proc/self/cgroup: "0::/path" (v2) or
/// "N:cpu,cpuacct:/path" (v1).
double cgroup_quota(const std::string& proc_root, const std::string& cgroup_root) {
  std::ifstream in(proc_root + "/self/cgroup");
  std::string line;
  double best = 0;
  while (std::getline(in, line)) {
    const auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    double q = 0;
    if (line.compare(0, a, "0") == 0 && controllers.empty()) {
      // v2 alone is mounted at the root; beside v1 (hybrid) under unified/.
      for (const char* sub : {"", "/unified"})
        if (q == 0) q = smallest_quota(cgroup_root + sub, path, /*v2=*/true);
    } else {
      std::istringstream list(controllers);
      std::string c;
      while (std::getline(list, c, ','))
        if (c == "cpu")  // mounted as cpu,cpuacct with a cpu link, or as cpu alone
          for (const std::string& dir : {cgroup_root + "/" + controllers, cgroup_root + "/cpu"})
            if (q == 0) q = smallest_quota(dir, path, /*v2=*/false);
    }
    if (q > 0 && (best == 0 || q < best)) best = q;
  }
  return best;
}

/// OMP_NUM_THREADS as OpenMP reads it: the first number of a list ("4,2": nested levels). 0
/// when that is not a whole number from 1 to 4096.
int omp_threads_of(const std::string& text) {
  const std::string first = text.substr(0, text.find(','));
  char* end = nullptr;
  errno = 0;
  const long n = std::strtol(first.c_str(), &end, 10);
  while (end && (*end == ' ' || *end == '\t')) ++end;  // OpenMP allows blanks around the number
  const bool ok = !first.empty() && end != first.c_str() && *end == '\0' && errno == 0 && n >= 1 && n <= 4096;
  return ok ? static_cast<int>(n) : 0;
}

/// The invalid OMP_NUM_THREADS that set_aside_invalid_omp_env removed from the environment.
std::optional<std::string>& set_aside() {
  static std::optional<std::string> text;
  return text;
}

int kernel_affinity() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  return std::max(1, CPU_COUNT(&set));
}

}  // namespace

CpuBudget cpu_budget(const std::string& proc_root, const std::string& cgroup_root, int affinity) {
  CpuBudget b;
  b.affinity = affinity > 0 ? affinity : kernel_affinity();
  b.quota = cgroup_quota(proc_root, cgroup_root);
  b.usable = b.affinity;
  b.source = "affinity mask";
  if (b.quota > 0 && std::ceil(b.quota - 1e-9) < b.usable) {
    b.usable = std::max(1, static_cast<int>(std::ceil(b.quota - 1e-9)));
    std::ostringstream s;
    s << "cgroup quota of " << b.quota << " CPUs";
    b.source = s.str();
  }
  return b;
}

void set_aside_invalid_omp_env() {
  const char* text = std::getenv("OMP_NUM_THREADS");
  if (!text || !*text || std::getenv(kOmpSetByHtga) || omp_threads_of(text) > 0) return;
  set_aside() = text;
  unsetenv("OMP_NUM_THREADS");
}

const char* user_omp_env() {
  if (set_aside()) return set_aside()->c_str();
  return std::getenv(kOmpSetByHtga) ? nullptr : std::getenv("OMP_NUM_THREADS");
}

ThreadPlan plan_threads(int requested, int jobs, const char* omp_env, const CpuBudget& budget) {
  ThreadPlan p;
  jobs = std::max(1, jobs);
  if (requested > 0) {
    p.total = requested;
    p.why = "--threads " + std::to_string(requested);
  } else if (omp_env && *omp_env) {
    const std::string text(omp_env);
    p.total = omp_threads_of(text);
    if (p.total == 0)
      throw InputError("OMP_NUM_THREADS=\"" + text +
                       "\" is not a number of threads from 1 to 4096; unset it or fix it");
    p.why = "OMP_NUM_THREADS=" + std::to_string(p.total);
  } else {
    p.total = std::max(1, budget.usable);
    p.why = std::to_string(p.total) + " CPU" + (p.total == 1 ? "" : "s") + " (" + budget.source + ")";
  }
  p.per_cell = std::max(1, p.total / jobs);
  return p;
}

}  // namespace htga::experiments

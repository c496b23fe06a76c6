// The CPU budget (affinity mask, cgroup quotas v1 and v2) on fake /proc and cgroup trees, and
// how a run divides its threads.
#include "experiments/cpus.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "experiments/error.h"
#include "test_util.h"

using htga::experiments::cpu_budget;
using htga::experiments::CpuBudget;
using htga::experiments::plan_threads;

namespace {

void write(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << text << "\n";
}

}  // namespace

TEST_CASE("cpu budget: the affinity mask without any quota", "[cpus]") {
  htga::test::TempDir dir("cpus");
  write(dir.file("proc/self/cgroup"), "0::/user.slice");
  write(dir.file("cg/user.slice/cpu.max"), "max 100000");
  const CpuBudget b = cpu_budget(dir.file("proc"), dir.file("cg"), 6);
  CHECK(b.affinity == 6);
  CHECK(b.quota == 0);
  CHECK(b.usable == 6);
  CHECK(b.source == "affinity mask");
}

TEST_CASE("cpu budget: a cgroup v2 quota, the smallest on the path, rounded up", "[cpus]") {
  htga::test::TempDir dir("cpus");
  write(dir.file("proc/self/cgroup"), "0::/kubepods/pod1/ctr");
  write(dir.file("cg/kubepods/cpu.max"), "400000 100000");
  write(dir.file("cg/kubepods/pod1/cpu.max"), "250000 100000");  // 2.5 CPUs
  write(dir.file("cg/kubepods/pod1/ctr/cpu.max"), "max 100000");
  const CpuBudget b = cpu_budget(dir.file("proc"), dir.file("cg"), 16);
  CHECK(b.quota == Approx(2.5));
  CHECK(b.usable == 3);
  CHECK(b.source.find("cgroup quota") != std::string::npos);
  // A quota above the affinity mask does not raise it.
  CHECK(cpu_budget(dir.file("proc"), dir.file("cg"), 2).usable == 2);
}

TEST_CASE("cpu budget: a container whose own cgroup path is not mounted reads the root's files", "[cpus]") {
  htga::test::TempDir dir("cpus");
  write(dir.file("proc/self/cgroup"), "0::/docker/abc123");
  write(dir.file("cg/cpu.max"), "100000 100000");
  CHECK(cpu_budget(dir.file("proc"), dir.file("cg"), 8).usable == 1);
}

TEST_CASE("cpu budget: cgroup v1 quota under cpu,cpuacct, and a hybrid tree", "[cpus]") {
  htga::test::TempDir dir("cpus");
  write(dir.file("proc/self/cgroup"), "4:memory:/x\n3:cpu,cpuacct:/slurm/job7\n0::/");
  write(dir.file("cg/cpu,cpuacct/slurm/job7/cpu.cfs_quota_us"), "200000");
  write(dir.file("cg/cpu,cpuacct/slurm/job7/cpu.cfs_period_us"), "100000");
  write(dir.file("cg/cpu,cpuacct/cpu.cfs_quota_us"), "-1");
  write(dir.file("cg/cpu,cpuacct/cpu.cfs_period_us"), "100000");
  CHECK(cpu_budget(dir.file("proc"), dir.file("cg"), 8).usable == 2);
  // v2 beside v1 (hybrid): the unified tree is under unified/.
  htga::test::TempDir hybrid("cpus");
  write(hybrid.file("proc/self/cgroup"), "1:cpu:/\n0::/svc");
  write(hybrid.file("cg/unified/svc/cpu.max"), "300000 100000");
  CHECK(cpu_budget(hybrid.file("proc"), hybrid.file("cg"), 8).usable == 3);
}

TEST_CASE("cpu budget: no cgroup files at all, and this process", "[cpus]") {
  htga::test::TempDir dir("cpus");
  CHECK(cpu_budget(dir.file("proc"), dir.file("cg"), 3).usable == 3);
  CHECK(cpu_budget().usable >= 1);
}

TEST_CASE("thread plan: --threads, then OMP_NUM_THREADS, then the budget, divided among jobs", "[cpus]") {
  CpuBudget b;
  b.usable = 8;
  b.source = "affinity mask";
  auto p = plan_threads(0, 1, nullptr, b);
  CHECK(p.total == 8);
  CHECK(p.per_cell == 8);
  CHECK(p.why == "8 CPUs (affinity mask)");
  p = plan_threads(0, 3, "", b);
  CHECK(p.per_cell == 2);  // 8 / 3, rounded down: never more threads than CPUs
  p = plan_threads(0, 16, nullptr, b);
  CHECK(p.per_cell == 1);
  p = plan_threads(0, 2, "6", b);
  CHECK(p.total == 6);
  CHECK(p.per_cell == 3);
  CHECK(p.why == "OMP_NUM_THREADS=6");
  p = plan_threads(0, 1, "4,2", b);  // nested levels: the outer one
  CHECK(p.total == 4);
  p = plan_threads(5, 2, "6", b);  // --threads wins over the environment
  CHECK(p.total == 5);
  CHECK(p.per_cell == 2);
  CHECK(p.why == "--threads 5");
  CHECK(plan_threads(0, 1, " 3 ", b).total == 3);  // OpenMP allows blanks around the number
  for (const char* bad : {"zero", "0", "-2", "3x", ",", " ", "4097", "99999999999999999999"})
    CHECK_THROWS_AS(plan_threads(0, 1, bad, b), htga::InputError);
}

// htga: Heavy-Tail Gradient Amplification experiments. main() only wires the subcommands and
// turns exceptions into one line on stderr and an exit code: 2 for an InputError (bad input,
// nothing written), 1 for a failure while running, 130 for an interrupt.

#include <dlfcn.h>
#include <malloc.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <stdexcept>

#include "cli/cmd_data.h"
#include "cli/cmd_pack.h"
#include "cli/commands.h"
#include "cli/slurm.h"
#include "experiments/cpus.h"
#include "experiments/error.h"
#include "experiments/stop.h"
#include "storage/sqlite.h"

namespace {

/// OpenBLAS chooses its kernels when it loads, from the CPU's model number; on a CPU it does not
/// know (virtual machines often report a generic model) it falls back to Prescott's SSE3 kernels,
/// 2-3x slower than the AVX2/AVX-512 ones the CPU has. Then htga starts itself again with
/// OPENBLAS_CORETYPE naming the kernels the CPU's features allow. Nothing happens when the
/// variable is set (by the user or by this) or when the BLAS is not OpenBLAS.
/// OpenMP fixes its default thread count when it loads, and setting the count later, per
/// thread, trained the CNN about 7% slower on 2 cores than the same count from the environment
/// (70-72 against 71-81 ms a step, alternating runs). Since the process starts again anyway,
/// OMP_NUM_THREADS is set to the CPUs it may use, unless the user set it; the runner knows it
/// is htga's (kOmpSetByHtga) and still says the count came from the CPUs.
void choose_blas_kernels(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE")) return;
  using CoreName = char* (*)();
  auto corename = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  if (!corename || std::strcmp(corename(), "Prescott") != 0) return;
  const char* core = __builtin_cpu_supports("avx512f") ? "SkylakeX"
                     : __builtin_cpu_supports("avx2")  ? "Haswell"
                                                       : nullptr;
  if (!core) return;
  setenv("OPENBLAS_CORETYPE", core, 1);
  if (!std::getenv("OMP_NUM_THREADS")) {
    setenv("OMP_NUM_THREADS", std::to_string(htga::experiments::cpu_budget().usable).c_str(), 1);
    setenv(htga::experiments::kOmpSetByHtga, "1", 1);
  }
  execv("/proc/self/exe", argv);  // returns only on failure: carry on with the slow kernels
}

/// glibc's malloc serves blocks of 128 KB and more with mmap and returns the top of its heap to
/// the system past 128 KB, adjusting both thresholds as blocks come and go. A training step
/// allocates and frees tensors of a few hundred KB to a few MB, so depending on the order in
/// which the thresholds moved, every step faulted its pages in again: the CNN's step took 70 to
/// 156 ms (a third of it system time) where 41 to 51 ms is the same work with the pages kept.
/// Fixed thresholds (mmap for blocks of 32 MB and more, trimming past 256 MB free) keep them;
/// resident memory did not grow (295 MB against 316 MB). A user's own malloc settings win.
void tune_malloc() {
#ifdef M_MMAP_THRESHOLD
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if ((tunables && std::strstr(tunables, "glibc.malloc.")) || std::getenv("MALLOC_MMAP_THRESHOLD_") ||
      std::getenv("MALLOC_TRIM_THRESHOLD_"))
    return;
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
}

/// CLI11 answers `htga foo` with "A subcommand is required": say which word is not a command.
void reject_unknown_command(CLI::App& app, int argc, char** argv) {
  CLI::App* current = &app;
  std::string path = "htga";
  for (int a = 1; a < argc && current->get_require_subcommand_min() > 0; ++a) {
    if (argv[a][0] == '-') return;  // an option: CLI11 says what is wrong with it
    std::string valid;
    CLI::App* next = nullptr;
    for (CLI::App* sub : current->get_subcommands([](CLI::App*) { return true; })) {
      if (sub->get_name() == argv[a]) next = sub;
      valid += (valid.empty() ? "" : ", ") + sub->get_name();
    }
    if (!next)
      throw htga::InputError(std::string("unknown command \"") + argv[a] + "\" for " + path + "; valid: " + valid +
                             " (" + path + " --help)");
    current = next;
    path += " " + current->get_name();
  }
}

/// A message's first line: library errors (c10) append backtraces.
std::string first_line(const std::string& msg) { return msg.substr(0, msg.find('\n')); }

}  // namespace

/// The command itself; main() below ends the process after it.
static int run(int argc, char** argv) {
  choose_blas_kernels(argv);
  htga::experiments::set_aside_invalid_omp_env();
  tune_malloc();
  // From here on a signal asks for a stop: grids record their cells as interrupted, exports
  // remove their temporary file; either way the exit status is 130.
  htga::experiments::install_signal_handlers();
  CLI::App app{"htga: train grids of experiments, measure the tail index of gradient noise, compare optimizers"};
  app.set_version_flag("--version", HTGA_VERSION);
  app.require_subcommand(1);
  int exit_code = 0;
  htga::cli::setup_run(app, exit_code);
  htga::cli::setup_report(app, exit_code);
  htga::cli::setup_export(app, exit_code);
  htga::cli::setup_list(app, exit_code);
  htga::cli::setup_estimate(app, exit_code);
  htga::cli::setup_merge(app, exit_code);
  htga::cli::setup_slurm(app, exit_code);
  htga::cli::setup_runs(app, exit_code);
  htga::cli::setup_data(app, exit_code);
  htga::cli::setup_pack(app, exit_code);
  try {
    reject_unknown_command(app, argc, argv);
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  } catch (const htga::Interrupted& e) {
    std::cerr << "htga: " << first_line(e.what()) << std::endl;
    return 130;
  } catch (const htga::InputError& e) {
    std::cerr << "htga: error: " << first_line(e.what()) << std::endl;
    return 2;
  } catch (const htga::storage::OpenError& e) {  // a database that is not one, or not ours
    std::cerr << "htga: error: " << first_line(e.what()) << std::endl;
    return 2;
  } catch (const std::filesystem::filesystem_error& e) {  // a path that cannot be used (a symlink loop, ...)
    std::cerr << "htga: error: " << (e.path1().empty() ? "" : e.path1().string() + ": ") << e.code().message()
              << std::endl;
    return 2;
  } catch (const std::logic_error& e) {
    // A bug (an unknown name after validation, a broken invariant), not bad input.
    std::cerr << "htga: internal error: " << first_line(e.what()) << std::endl;
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "htga: error: " << first_line(e.what()) << std::endl;
    return 1;
  }
  // A signal that stopped the work after start-up ends the process with 130, whatever the
  // command (a run grid records its cells as interrupted first).
  if (htga::experiments::stop_requested() && exit_code == 0) return 130;
  return exit_code;
}

/// When the command is done every file, database and thread it used is closed (they live in its
/// scope), so the process ends at once: the normal exit ran the static destructors of the ~290
/// shared libraries that Debian's LibTorch loads, 0.06-0.1 s of a short command here. Builds
/// with AddressSanitizer keep the normal exit for its leak report.
int main(int argc, char** argv) {
  const int code = run(argc, argv);
#if defined(__SANITIZE_ADDRESS__)
  return code;
#else
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  std::_Exit(code);
#endif
}

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli/commands.h"
#include "cli/csv.h"
#include "cli/report_format.h"
#include "experiments/error.h"
#include "storage/paths.h"
#include "storage/store.h"

extern char** environ;

namespace htga::cli {

namespace {

/// Runs a program found on PATH with arguments, without a shell; its exit status, or -1 when
/// it could not be started. `quiet`: its stdout and stderr go to /dev/null.
int spawn_wait(const std::vector<std::string>& argv, bool quiet = false) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (quiet) {
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  }
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// The first Python that has matplotlib and pandas: $HTGA_PYTHON, python3 on PATH, then the
/// system's /usr/bin/python3 (where Debian's packages go when PATH leads to another Python).
std::string find_python() {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("HTGA_PYTHON")) candidates.push_back(env);
  candidates.insert(candidates.end(), {"python3", "/usr/bin/python3"});
  for (const auto& py : candidates)
    if (spawn_wait({py, "-c", "import matplotlib, pandas"}, /*quiet=*/true) == 0) return py;
  return "";
}

/// scripts/plot.py: $HTGA_PLOT_SCRIPT, else beside the source tree the binary was built in
/// (build/htga -> scripts/plot.py), else under the current folder.
std::string find_plot_script() {
  namespace fs = std::filesystem;
  if (const char* env = std::getenv("HTGA_PLOT_SCRIPT")) return env;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec)
    for (fs::path dir = exe.parent_path(); !dir.empty() && dir != dir.root_path(); dir = dir.parent_path())
      if (fs::exists(dir / "scripts" / "plot.py", ec)) return (dir / "scripts" / "plot.py").string();
  return "scripts/plot.py";
}

/// Where --plots writes the report's rows for scripts/plot.py.
std::string summary_path(const ReportOptions& options) { return options.plots_dir + "/summary.json"; }

void make_plots(const ReportOptions& options, const std::vector<analysis::ReportGroup>& groups, std::ostream& out) {
  const std::string script = find_plot_script();
  if (!std::filesystem::exists(script))
    throw InputError("--plots: " + script + " not found (set HTGA_PLOT_SCRIPT to scripts/plot.py)");
  const std::string python = find_python();
  if (python.empty())
    throw InputError(
        "--plots: python3 with matplotlib and pandas is needed (apt-get install python3-matplotlib "
        "python3-pandas)");
  // The report's selection goes along, so that the figures show the same configurations.
  AtomicFile summary(summary_path(options));
  summary.write(report_json(groups).dump(1) + "\n");
  summary.commit();
  const int rc = spawn_wait(
      {python, script, "--db", options.db_path, "--out", options.plots_dir, "--summary", summary_path(options)});
  if (rc != 0) throw std::runtime_error("--plots: " + script + " failed (exit " + std::to_string(rc) + ")");
  out.flush();
  std::cerr << "plots written to " << options.plots_dir << "/" << std::endl;
}

}  // namespace

void run_report(const ReportOptions& options, std::ostream& out) {
  const std::string& f = options.format;
  if (f != "table" && f != "markdown" && f != "csv" && f != "json")
    throw InputError("report: unknown format \"" + f + "\"; valid: table, markdown, csv, json");
  require_database(options.db_path);
  // Before anything is opened or written: the figures' summary.json must not replace the database.
  if (options.plots) storage::check_output_path(summary_path(options), {options.db_path});
  // A report only reads: it works on a read-only file or folder and leaves the file as it was.
  storage::Store store(options.db_path, storage::Store::Mode::kReadOnly);
  if (const auto unknown = options.analysis.filter.unknown_value(store.runs()); !unknown.empty())
    throw InputError(options.db_path + ": " + unknown);
  // A run whose stored config is damaged is named on stderr and left out: the others are compared.
  const auto groups =
      analysis::analyse(store, options.analysis, [&](const storage::RunRecord& r, const std::string& why) {
        std::cerr << "htga: warning: " << options.db_path << ": run " << r.id << " skipped: " << why << std::endl;
      });
  if (f == "table" || f == "markdown") {
    print_report(groups, out, f == "markdown");
  } else if (f == "json") {
    out << report_json(groups).dump(2) << "\n";
  } else {
    CsvWriter csv([&](const std::string& text) { out << text; });
    write_report_csv(groups, csv);
    csv.flush();
  }
  if (options.plots) make_plots(options, groups, out);
}

void setup_report(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<ReportOptions>();
  auto* rep = app.add_subcommand(
      "report",
      "Compare optimizers across seeds: per family the configuration with the best mean validation metric, its test "
      "metric with a 95% CI, and the difference to the baseline with paired t and Wilcoxon tests");
  rep->add_option("--db", opts->db_path, "Result database")->capture_default_str();
  rep->add_option("--compare", opts->analysis.compare, "Baseline optimizer family")->capture_default_str();
  rep->add_option("--metric", opts->analysis.metric,
                  "Metric to compare (acc, loss, top5, or a named metric such as mcc, f1, ppl); default: each "
                  "run's main metric");
  rep->add_option("--select", opts->analysis.select,
                  "best: per optimizer the configuration with the best mean validation metric; all: every "
                  "configuration")
      ->check(CLI::IsMember({"best", "all"}))
      ->capture_default_str();
  rep->add_option("--adjust", opts->analysis.adjust,
                  "Adjust the p-values for the report's many comparisons: none, holm (family-wise error) or bh "
                  "(Benjamini-Hochberg, false discovery rate); the sentences then use the adjusted values")
      ->check(CLI::IsMember({"none", "holm", "bh"}))
      ->capture_default_str();
  rep->add_option("--grid", opts->analysis.filter.grids, "Only runs of this grid (repeatable)");
  rep->add_option("--dataset", opts->analysis.filter.datasets, "Only runs on this dataset (repeatable)");
  rep->add_option("--model", opts->analysis.filter.models, "Only runs of this model (repeatable)");
  rep->add_option("--format", opts->format, "table, markdown, csv or json")
      ->check(CLI::IsMember({"table", "markdown", "csv", "json"}))
      ->capture_default_str();
  rep->add_flag("--plots", opts->plots, "Also draw the figures with scripts/plot.py (python3, matplotlib, pandas)");
  rep->add_option("--plots-dir", opts->plots_dir, "Folder for the figures")->capture_default_str();
  rep->callback([opts, &exit_code]() {
    run_report(*opts, std::cout);
    exit_code = 0;
  });
}

}  // namespace htga::cli

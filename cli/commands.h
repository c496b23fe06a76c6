#pragma once
// The subcommands. Each has an options struct and a run_<verb>() that knows nothing of CLI11
// (tests call these directly), plus setup_<verb>() that wires it into the command line.

#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "experiments/analysis/analysis.h"
#include "experiments/runner.h"
#include "storage/query.h"

namespace CLI {
class App;
}

namespace htga::cli {

constexpr const char* kDefaultDb = "results/htga.db";

/// The report's settings (baseline, metric, selection, run filter), which `export summary` shares.
using analysis::AnalysisOptions;

/// setup_*: adds the subcommand to `app`; its callback stores its exit status in `exit_code`.
void setup_run(CLI::App& app, int& exit_code);
void setup_report(CLI::App& app, int& exit_code);
void setup_export(CLI::App& app, int& exit_code);
void setup_list(CLI::App& app, int& exit_code);
void setup_estimate(CLI::App& app, int& exit_code);
void setup_merge(CLI::App& app, int& exit_code);

/// `htga merge OUT IN...`: prints a line per input; throws OpenError on a conflict.
int run_merge(const std::string& out_path, const std::vector<std::string>& inputs, std::ostream& out);
void setup_runs(CLI::App& app, int& exit_code);  // `htga runs` and `htga show`

/// How `htga run grid` shows its progress.
struct RunView {
  bool quiet = false;            // -q: failures only
  bool live = false;             // a live display (stderr is a terminal)
  double progress_every_s = 60;  // not live: seconds between progress lines of cells in training
};
/// `htga run grid FILE`: progress on `err`, a dry run's listing on `out`. Exit status 0 when
/// every cell finished or diverged, 1 when a cell failed, 130 when interrupted.
int run_run(const experiments::RunOptions& options, const RunView& view, std::ostream& out, std::ostream& err);

struct ReportOptions {
  std::string db_path = kDefaultDb;
  AnalysisOptions analysis;      // baseline, metric, selection, run filter
  std::string format = "table";  // table, markdown, csv or json
  bool plots = false;            // also run scripts/plot.py
  std::string plots_dir = "results/plots";
};
/// Writes the comparison to `out`. Throws InputError for a missing database or baseline.
void run_report(const ReportOptions& options, std::ostream& out);

struct ExportOptions {
  std::string what;  // steps, evals, runs, alpha or summary
  std::string db_path = kDefaultDb;
  std::string out;            // CSV path, "-" for stdout (default results/<what>.csv)
  storage::RunFilter filter;  // which runs
  bool with_config = false;   // steps, evals, alpha: append the run's flattened config
  AnalysisOptions analysis;   // summary: the report's settings (its filter is `filter`)
};
/// Writes the CSV (streaming, constant memory; a file atomically); returns the number of data
/// rows. With out "-" the CSV goes to `stdout_stream`.
long run_export(const ExportOptions& options, std::ostream& stdout_stream);
long run_export(const ExportOptions& options);  // stdout is std::cout

struct RunsOptions {
  std::string db_path = kDefaultDb;
  storage::RunFilter filter;
  std::string format = "table";  // table or json
};
/// `htga runs`: one line per run matching the filter.
void run_runs(const RunsOptions& options, std::ostream& out);

struct ShowOptions {
  std::string db_path = kDefaultDb;
  int64_t run_id = 0;
  bool json = false;
};
/// `htga show RUN`: config, status, metrics, error, liveness and checkpoint of one run.
void run_show(const ShowOptions& options, std::ostream& out);

/// `htga list`: every registry with its parameters, defaults and help.
void run_list(std::ostream& out);

struct EstimateOptions {
  std::string path;               // values: text, CSV or .npy
  std::string estimator = "all";  // hill, pickands, moment, stable, ks or all
  int64_t k = 0;                  // 0 = each estimator's default
  int column = 1;                 // CSV column, 1-based
  bool json = false;
  int threads = 0;  // intra-op threads (0: OMP_NUM_THREADS if set, else every usable CPU)
};
/// Reads the values of a file (text/CSV column or .npy); InputError naming the file otherwise.
torch::Tensor read_values(const std::string& path, int column = 1);
/// Runs the chosen estimators: {"hill": {"alpha": ..., "std_error": ..., "n": ..., ...}, ...};
/// alpha is null (with a "reason") where undefined.
nlohmann::json run_estimate(const EstimateOptions& options);
void print_estimates(const nlohmann::json& results, std::ostream& out);

/// Opens an existing database for reading; InputError when there is none at `path`.
void require_database(const std::string& path);

}  // namespace htga::cli

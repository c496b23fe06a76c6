#pragma once
// Read-only queries for reports and exports. Rows stream through a callback, one prepared
// statement stepping row by row, so that memory stays constant whatever the table's size.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "storage/store.h"

namespace htga::storage {

/// Which runs a report or export reads. An empty list matches everything; a run must match
/// one value of each non-empty list.
struct RunFilter {
  std::vector<std::string> datasets;    // dataset names
  std::vector<std::string> models;      // model names
  std::vector<std::string> optimizers;  // optimizer names
  std::vector<std::string> grids;       // grid names
  std::vector<std::string> statuses;    // running, finished, failed, diverged, interrupted
  std::vector<int64_t> run_ids;

  bool matches(const RunRecord& run) const;
  /// A name or id of the filter that no run of `runs` has, as a message naming the option and the
  /// values present ("--dataset cifar11: no run has it; present: cifar10, fashion-mnist"); "" when
  /// every one is present. Statuses are not names: a status with no run is an empty answer.
  std::string unknown_value(const std::vector<RunRecord>& runs) const;
};

/// The runs that match, in id order.
std::vector<RunRecord> select_runs(Store& store, const RunFilter& filter);

/// Why a run's stored config cannot be read: "" when it is a JSON object, else a short reason
/// ("not valid JSON: ..."). A damaged row of one run must not stop a command that reads many.
std::string config_problem(const RunRecord& run);

/// The runs that match and whose config can be read, in id order. Each match left out is given
/// to `on_damaged(run, why)` (e.g. to warn: "run 7: ...; skipped").
std::vector<RunRecord> select_runs(Store& store, const RunFilter& filter,
                                   const std::function<void(const RunRecord&, const std::string&)>& on_damaged);

/// Calls `fn(run_id, row)` for each step of the given runs, in the order of `run_ids`, then step.
void for_each_step(Database& db, const std::vector<int64_t>& run_ids,
                   const std::function<void(int64_t, const StepRow&)>& fn);
/// Calls `fn(run_id, row)` for each evaluation of the given runs, by run, epoch and split.
void for_each_eval(Database& db, const std::vector<int64_t>& run_ids,
                   const std::function<void(int64_t, const EvalRow&)>& fn);
/// Calls `fn(run_id, row)` for each per-layer estimate of the given runs, by run, step and layer.
void for_each_layer_alpha(Database& db, const std::vector<int64_t>& run_ids,
                          const std::function<void(int64_t, const LayerAlphaRow&)>& fn);
/// The distinct names in the metrics table among the given runs, sorted.
std::vector<std::string> metric_names(Database& db, const std::vector<int64_t>& run_ids);

/// The median alpha_hat over the last `fraction` of a run's logged steps (at least one step);
/// steps without an estimate are skipped. NaN when there is none.
double tail_alpha_median(Database& db, int64_t run_id, double fraction = 0.1);

/// The last value of a metric on a split ("val", "test", ...): for acc, loss and top5 the
/// final evaluation row, otherwise (or when there is none) the named metric of the latest
/// epoch. NaN when the run has none.
double final_metric(Database& db, int64_t run_id, const std::string& split, const std::string& name);

/// Step count and the range of steps logged for a run (for `htga show`).
struct StepStats {
  int64_t rows = 0;
  int64_t first = -1, last = -1;  // -1 when there are none
};
StepStats step_stats(Database& db, int64_t run_id);

}  // namespace htga::storage

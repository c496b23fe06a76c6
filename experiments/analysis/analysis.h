#pragma once
// The comparison behind `htga report` and `htga export summary`: optimizers across seeds, with
// model selection on the validation split and tests against a baseline family.
//
// Runs are grouped by dataset config x model config (x main metric). Within a group a
// configuration is a run's config without its seed and the settings outside the cell key
// (ParamSpec::in_key: train.device, ...); a family is an optimizer name. Per family the
// configuration with the best mean validation metric is selected (configurations with a diverged
// run rank after those without), and its test metric is reported: selecting on test would
// report the maximum of noisy estimates.
//
// Storage, the registries and JSON only: no LibTorch, no CLI11 (cli/report_format prints it).

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "storage/query.h"

namespace htga::analysis {

struct AnalysisOptions {
  std::string compare = "sgd-clip";  // the baseline optimizer family
  std::string metric;                // "" = each run's main metric (acc for vision tasks)
  std::string select = "best";       // best: the selected configuration per family; all: every one
  storage::RunFilter filter;         // which runs take part
  double level = 0.95;               // confidence level of the intervals
  /// none, holm or bh: p-values adjusted for multiple comparisons across every comparison the
  /// report makes (each group's selected configurations against its baseline); the sentences
  /// then use the adjusted values.
  std::string adjust = "none";
};

/// One configuration of a group. Metric values are in the stored units (fractions for
/// accuracies); NaN where undefined.
struct ReportRow {
  std::string group;  // the group's label
  std::string dataset, model, optimizer;
  nlohmann::json config;                          // run config without seed and the settings out of the key
  std::string label;                              // the parameters that tell it from its family's other configurations
  std::string metric;                             // the metric compared
  bool selected = false;                          // best mean validation metric of its family
  bool baseline = false;                          // the selected configuration of the baseline family
  std::string selected_by;                        // "val", or "test" when no run of the group has a validation split
  int runs = 0, n = 0, diverged = 0, failed = 0;  // n: finished with a test value
  std::vector<int64_t> seeds;                     // of the n finished runs, ascending
  std::vector<double> test;                       // their test metric, same order
  double val_mean = 0;                            // mean validation metric (the selection score)
  double mean = 0, std = 0, ci_low = 0, ci_high = 0;
  double diff = 0, diff_ci_low = 0, diff_ci_high = 0;  // this minus the baseline
  int n_pairs = 0;                                     // seeds both have (paired test), 0 with Welch's test
  std::string diff_test;                               // "paired", "welch" or "" (no comparison)
  double p_t = 0, p_wilcoxon = 0;
  double p_t_adj = 0, p_wilcoxon_adj = 0;  // adjusted (AnalysisOptions::adjust); NaN when not adjusted
  double gen_gap = 0;                      // mean of train - test accuracy
  double alpha_hat_median = 0;             // median over runs of each run's median alpha_hat, last 10% of steps
  double time_s = 0;                       // mean training time per finished run
  std::string summary;                     // a sentence comparing it with the baseline
};

struct ReportGroup {
  std::string label, dataset, model, metric;
  std::vector<ReportRow> rows;  // baseline first, then by family and selection rank
  std::vector<std::string> summaries, warnings;
};

/// Told of a run that matches but is left out because its stored config cannot be read; `why`
/// is storage::config_problem's reason.
using OnDamaged = std::function<void(const storage::RunRecord& run, const std::string& why)>;

/// Builds the report. A matching run whose stored config cannot be read is left out and given to
/// `on_damaged` (to warn; an empty one leaves it out without a word), so that one damaged row
/// does not stop the report. Throws InputError, with the valid values, for a `select` other than
/// best or all, an `adjust` other than none, holm or bh, when no run matches (after the damaged ones are left out), for
/// a baseline family
/// (`compare`) no matching run has, and for a `metric` no matching run has.
std::vector<ReportGroup> analyse(storage::Store& store, const AnalysisOptions& options, const OnDamaged& on_damaged);
/// As above, but a damaged run is an InputError that names it ("<db>: run 7: its stored config
/// is not valid JSON (...)"): for callers that have nowhere to warn.
std::vector<ReportGroup> analyse(storage::Store& store, const AnalysisOptions& options);

/// The metrics some of the runs have, sorted: their main metrics, the evaluated loss, acc and
/// top5 where a value is stored, and the named metrics (mcc, f1, ...).
std::vector<std::string> metrics_present(storage::Store& store, const std::vector<storage::RunRecord>& runs);

/// Loss and perplexity are better when lower; every other metric when higher.
bool lower_is_better(const std::string& metric);
/// Accuracies, printed as percent points.
bool is_fraction_metric(const std::string& metric);
/// A metric value as the report writes it: a fraction in percent points with two decimals,
/// another value with four significant digits, "-" when not finite; `sign`: always signed.
std::string format_value(double v, bool fraction, bool sign = false);

}  // namespace htga::analysis

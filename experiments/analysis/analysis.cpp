#include "experiments/analysis/analysis.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "experiments/analysis/stats.h"
#include "experiments/config.h"
#include "experiments/error.h"

namespace htga::analysis {

using nlohmann::json;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kAlpha = 0.05;  // significance level of the summary sentences
constexpr int kMinSeeds = 3;     // fewer finished seeds than this: too few to say anything

struct RunValues {
  int64_t seed = 0;
  double val = kNaN, test = kNaN, gen_gap = kNaN, time_s = kNaN;
  int64_t run_id = 0;
};

struct Config {
  std::string key, optimizer;
  json config;
  int runs = 0, diverged = 0, failed = 0;
  std::map<int64_t, RunValues> finished;  // by seed
};

struct Group {
  std::string label, dataset, model, metric;
  std::vector<Config> configs;
  std::map<std::string, size_t> index;  // config key -> position
};

/// What tells configurations apart: the config without its seed and without the settings that
/// are not part of the cell key.
json configuration_of(const json& cfg) {
  json c = experiments::without_unkeyed(cfg);
  c.erase("seed");
  return c;
}

std::string group_label(const json& cfg, const std::string& dataset, const std::string& model) {
  // Only what differs from the defaults: the settings a person wrote in the grid.
  std::string label = dataset + "/" + model;
  json lean;
  try {
    lean = experiments::without_defaults(cfg);
  } catch (const std::exception&) {
    lean = cfg;  // a config of a name this build does not know: show it as stored
  }
  for (const char* part : {"dataset", "model"}) {
    json p = lean.value(part, json::object());
    p.erase("name");
    if (!p.empty()) label += fmt::format("  {} {}", part, p.dump());
  }
  return label;
}

std::string p_sentence(double p) { return p < 0.001 ? "p < 0.001" : fmt::format("p = {:.2g}", p); }

std::string unit_of(const std::string& metric) { return is_fraction_metric(metric) ? "points" : metric; }

/// "lr=0.1 beta=1": the parameters that vary among a family's configurations, and always lr.
std::map<std::string, std::string> labels_of(const Group& g) {
  std::map<std::string, std::map<std::string, std::string>> flat;  // config key -> flattened
  std::map<std::string, std::set<std::string>> varying;            // family -> keys
  for (const auto& c : g.configs) {
    auto& f = flat[c.key];
    json parts = json::object();
    for (const char* part : {"optimizer", "train"})
      if (c.config.contains(part)) parts[part] = c.config[part];
    experiments::flatten_json(parts, "", f);
    f.erase("optimizer.name");
  }
  for (const auto& a : g.configs)
    for (const auto& b : g.configs)
      if (a.optimizer == b.optimizer)
        for (const auto& [k, v] : flat[a.key]) {
          auto it = flat[b.key].find(k);
          if (it == flat[b.key].end() || it->second != v) varying[a.optimizer].insert(k);
        }
  std::map<std::string, std::string> out;
  for (const auto& c : g.configs) {
    std::set<std::string> keys = varying[c.optimizer];
    keys.insert("optimizer.lr");
    std::string label;
    for (const auto& k : keys) {
      auto it = flat[c.key].find(k);
      if (it == flat[c.key].end()) continue;
      const std::string shown = k.substr(k.find('.') + 1);
      label += (label.empty() ? "" : " ") + shown + "=" + it->second;
    }
    out[c.key] = label;
  }
  return out;
}

bool better(double a, double b, bool lower) { return lower ? a < b : a > b; }

/// "a, b, c".
template <typename Names>
std::string joined(const Names& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace

bool lower_is_better(const std::string& metric) {
  return metric == "loss" || metric == "ppl" || metric == "perplexity";
}

bool is_fraction_metric(const std::string& metric) {
  return metric == "acc" || metric == "top5" || metric == "accuracy";
}

std::string format_value(double v, bool fraction, bool sign) {
  if (!std::isfinite(v)) return "-";
  if (fraction) return sign ? fmt::format("{:+.2f}", 100 * v) : fmt::format("{:.2f}", 100 * v);
  return sign ? fmt::format("{:+.4g}", v) : fmt::format("{:.4g}", v);
}

std::vector<std::string> metrics_present(storage::Store& store, const std::vector<storage::RunRecord>& runs) {
  std::set<std::string> names;
  std::vector<int64_t> ids;
  for (const auto& r : runs) {
    if (!r.metric.empty()) names.insert(r.metric);
    ids.push_back(r.id);
  }
  storage::for_each_eval(store.database(), ids, [&](int64_t, const storage::EvalRow& e) {
    if (std::isfinite(e.loss)) names.insert("loss");
    if (std::isfinite(e.acc)) names.insert("acc");
    if (std::isfinite(e.top5)) names.insert("top5");
  });
  for (auto& n : storage::metric_names(store.database(), ids)) names.insert(std::move(n));
  return {names.begin(), names.end()};
}

namespace {
// The steps of analyse(), in the order it takes them.

/// The checks before anything is grouped, each an InputError that lists the valid values: some
/// run matches, the baseline family has a run among them, and so has the metric asked for.
void check_runs_match(storage::Store& store, const std::vector<storage::RunRecord>& runs,
                      const AnalysisOptions& options) {
  if (runs.empty()) throw InputError(store.path() + ": no runs match (check --grid, --dataset, --model, --optimizer)");
  std::set<std::string> families;
  for (const auto& r : runs) families.insert(r.optimizer);
  if (!families.count(options.compare))
    throw InputError(store.path() + ": --compare \"" + options.compare +
                     "\": no runs of that optimizer match; valid: " + joined(families));
  if (!options.metric.empty()) {
    const auto present = metrics_present(store, runs);
    if (std::find(present.begin(), present.end(), options.metric) == present.end())
      throw InputError(store.path() + ": --metric \"" + options.metric +
                       "\": no run that matches has that metric; valid: " + joined(present));
  }
}

/// The metric a run is compared on: the one asked for, else the run's main metric (acc when it
/// has none).
std::string metric_of(const storage::RunRecord& r, const AnalysisOptions& options) {
  return options.metric.empty() ? (r.metric.empty() ? "acc" : r.metric) : options.metric;
}

/// A finished run's values on `metric`: its main metric from the run's row (test_acc when an
/// older row has no test_metric), another one from its evaluations and named metrics.
RunValues values_of(storage::Database& db, const storage::RunRecord& r, const std::string& metric,
                    const AnalysisOptions& options) {
  RunValues v;
  v.seed = r.seed;
  v.run_id = r.id;
  const bool main_metric = options.metric.empty() || options.metric == r.metric;
  v.test = main_metric ? r.test_metric : storage::final_metric(db, r.id, "test", metric);
  if (main_metric && std::isnan(v.test) && metric == "acc") v.test = r.test_acc;
  v.val = main_metric ? r.val_metric : kNaN;
  if (std::isnan(v.val)) v.val = storage::final_metric(db, r.id, "val", metric);
  v.gen_gap = r.gen_gap;
  v.time_s = r.train_time_s;
  return v;
}

/// The configuration of a run's config within its group, added on its first run.
Config& configuration_in(Group& g, const json& cfg, const std::string& optimizer) {
  json conf = configuration_of(cfg);
  const std::string ckey = conf.dump();
  auto [it, inserted] = g.index.emplace(ckey, g.configs.size());
  if (inserted) g.configs.push_back(Config{ckey, optimizer, conf, 0, 0, 0, {}});
  return g.configs[it->second];
}

/// The runs by group (dataset config x model config x metric, ordered by that key), each counted
/// in its configuration; a finished run with a test value is kept by seed. Each config parses:
/// select_runs left out the damaged ones.
std::map<std::string, Group> group_runs(storage::Database& db, const std::vector<storage::RunRecord>& runs,
                                        const AnalysisOptions& options) {
  std::map<std::string, Group> groups;
  for (const auto& r : runs) {
    const json cfg = json::parse(r.config_json);
    const std::string metric = metric_of(r, options);
    const std::string gkey =
        cfg.value("dataset", json::object()).dump() + cfg.value("model", json::object()).dump() + "|" + metric;
    Group& g = groups[gkey];
    if (g.label.empty()) {
      g.label = group_label(cfg, r.dataset, r.model);
      g.dataset = r.dataset;
      g.model = r.model;
      g.metric = metric;
    }
    Config& c = configuration_in(g, cfg, r.optimizer);
    ++c.runs;
    if (r.status == "diverged") ++c.diverged;
    if (r.status == "failed") ++c.failed;
    if (r.status != "finished") continue;
    const RunValues v = values_of(db, r, metric, options);
    if (std::isfinite(v.test)) c.finished[r.seed] = v;
  }
  return groups;
}

/// Whether a finished run of the group has a validation value; if none has, configurations are
/// selected on test (and the report says so).
bool has_validation(const Group& g) {
  for (const auto& c : g.configs)
    for (const auto& [seed, v] : c.finished)
      if (std::isfinite(v.val)) return true;
  return false;
}

/// A configuration's row: its counts, finished seeds and test values, the mean selection score
/// (validation, or test when `by_val` is false) and the test statistics. No comparison yet.
ReportRow row_of(const Group& g, const Config& c, const std::string& label, bool by_val, double level) {
  ReportRow row;
  row.group = g.label;
  row.dataset = g.dataset;
  row.model = g.model;
  row.optimizer = c.optimizer;
  row.config = c.config;
  row.label = label;
  row.metric = g.metric;
  row.selected_by = by_val ? "val" : "test";
  row.runs = c.runs;
  row.diverged = c.diverged;
  row.failed = c.failed;
  std::vector<double> score, gaps, times;
  for (const auto& [seed, v] : c.finished) {
    row.seeds.push_back(seed);
    row.test.push_back(v.test);
    const double s = by_val ? v.val : v.test;
    if (std::isfinite(s)) score.push_back(s);
    if (std::isfinite(v.gen_gap)) gaps.push_back(v.gen_gap);
    if (std::isfinite(v.time_s)) times.push_back(v.time_s);
  }
  row.n = static_cast<int>(row.test.size());
  row.val_mean = stats::mean(score);
  const auto m = stats::mean_interval(row.test, level);
  row.mean = m.mean;
  row.std = m.sd;
  row.ci_low = m.low;
  row.ci_high = m.high;
  row.gen_gap = stats::mean(gaps);
  row.time_s = stats::mean(times);
  row.diff = row.diff_ci_low = row.diff_ci_high = row.p_t = row.p_wilcoxon = kNaN;
  row.p_t_adj = row.p_wilcoxon_adj = kNaN;
  return row;
}

using FamilyRanks = std::map<std::string, std::vector<size_t>>;  // family -> row indices, best first

/// Selection: per family, configurations with a score first, then those without a diverged run,
/// then the best mean score, then by label. The first is selected if it has a score.
FamilyRanks select_per_family(std::vector<ReportRow>& rows, bool lower) {
  FamilyRanks by_family;
  for (size_t i = 0; i < rows.size(); ++i) by_family[rows[i].optimizer].push_back(i);
  for (auto& [family, idx] : by_family) {
    std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
      const ReportRow &ra = rows[a], &rb = rows[b];
      const bool sa = std::isfinite(ra.val_mean), sb = std::isfinite(rb.val_mean);
      if (sa != sb) return sa;
      if ((ra.diverged == 0) != (rb.diverged == 0)) return ra.diverged == 0;
      if (sa && ra.val_mean != rb.val_mean) return better(ra.val_mean, rb.val_mean, lower);
      return ra.label < rb.label;
    });
    if (std::isfinite(rows[idx.front()].val_mean)) rows[idx.front()].selected = true;
  }
  return by_family;
}

/// Marks the baseline, the selected configuration of the `compare` family, and returns it; null
/// when that family has no selected configuration in the group.
const ReportRow* mark_baseline(std::vector<ReportRow>& rows, const FamilyRanks& by_family, const std::string& compare) {
  const auto it = by_family.find(compare);
  if (it == by_family.end()) return nullptr;
  ReportRow& b = rows[it->second.front()];
  if (!b.selected) return nullptr;
  b.baseline = true;
  return &b;
}

/// The difference of `row` minus the baseline: paired t and Wilcoxon signed-rank tests on the
/// seeds both have where there are at least two, otherwise Welch's test on all seeds of both.
void compare_with(ReportRow& row, const ReportRow& base, double level) {
  std::vector<double> a, b;
  for (size_t i = 0; i < row.seeds.size(); ++i) {
    auto it = std::find(base.seeds.begin(), base.seeds.end(), row.seeds[i]);
    if (it == base.seeds.end()) continue;
    a.push_back(row.test[i]);
    b.push_back(base.test[static_cast<size_t>(it - base.seeds.begin())]);
  }
  stats::TTest t;
  if (a.size() >= 2) {
    t = stats::paired_t(a, b, level);
    std::vector<double> d(a.size());
    for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
    row.p_wilcoxon = stats::wilcoxon_signed_rank(d).p;
    row.n_pairs = static_cast<int>(a.size());
    row.diff_test = "paired";
  } else if (row.n > 0 && base.n > 0) {
    t = stats::welch_t(row.test, base.test, level);
    row.diff_test = "welch";
  } else {
    return;
  }
  row.diff = t.estimate;
  row.diff_ci_low = t.low;
  row.diff_ci_high = t.high;
  row.p_t = t.p;
}

/// The rows shown: the baseline family first, then by family name; within a family in rank
/// order, only the selected configuration unless `select` is all.
std::vector<ReportRow> rows_shown(const std::vector<ReportRow>& rows, const FamilyRanks& by_family,
                                  const AnalysisOptions& options) {
  std::vector<std::string> order{options.compare};
  for (const auto& [family, idx] : by_family)
    if (family != options.compare) order.push_back(family);
  std::vector<ReportRow> shown;
  for (const auto& family : order) {
    auto it = by_family.find(family);
    if (it == by_family.end()) continue;
    for (size_t i : it->second)
      if (options.select == "all" || rows[i].selected) shown.push_back(rows[i]);
  }
  return shown;
}

/// Each row's median over its finished runs of the run's tail alpha_hat: one range query per
/// run, so only for the rows shown.
void add_alpha_hat(storage::Database& db, const Group& g, std::vector<ReportRow>& rows) {
  for (auto& row : rows) {
    const Config& c = g.configs[g.index.at(row.config.dump())];
    std::vector<double> alphas;
    for (const auto& [seed, v] : c.finished) {
      const double a = storage::tail_alpha_median(db, v.run_id);
      if (std::isfinite(a)) alphas.push_back(a);
    }
    row.alpha_hat_median = stats::median(alphas);
  }
}

/// Too few finished seeds on either side, or no p-value: the comparison says nothing.
bool too_few_seeds(const ReportRow& row, const ReportRow& base) {
  return row.n < kMinSeeds || base.n < kMinSeeds || !std::isfinite(row.p_t);
}

/// "p = 0.03", or with an adjustment "p = 0.06 (Holm-adjusted; unadjusted 0.03)".
std::string p_of(const ReportRow& row, const AnalysisOptions& options) {
  if (options.adjust == "none") return p_sentence(row.p_t);
  return fmt::format("{} ({}-adjusted over the report's comparisons; unadjusted {:.2g})", p_sentence(row.p_t_adj),
                     options.adjust == "holm" ? "Holm" : "BH", row.p_t);
}

/// The sentence comparing a row with the baseline (family `compare`): who is ahead, by how much,
/// with the interval, p and the seeds; or that there are too few seeds to say anything.
std::string summary_of(const ReportRow& row, const ReportRow& base, const AnalysisOptions& options) {
  const std::string& compare = options.compare;
  const std::string where = row.dataset + "/" + row.model;
  if (too_few_seeds(row, base))
    return fmt::format("{} vs {} on {}: too few finished seeds to say anything ({} and {}; need {}+)", row.optimizer,
                       compare, where, row.n, base.n, kMinSeeds);
  const bool fraction = is_fraction_metric(row.metric);
  const std::string seeds = row.diff_test == "paired" ? fmt::format("{} seeds", row.n_pairs)
                                                      : fmt::format("Welch, {} vs {} seeds", row.n, base.n);
  const std::string numbers = fmt::format("{} {} [{}, {}], {}, {}", format_value(row.diff, fraction, true),
                                          unit_of(row.metric), format_value(row.diff_ci_low, fraction),
                                          format_value(row.diff_ci_high, fraction), p_of(row, options), seeds);
  const bool ahead = lower_is_better(row.metric) ? row.diff < 0 : row.diff > 0;
  if ((options.adjust == "none" ? row.p_t : row.p_t_adj) < kAlpha)
    return fmt::format("{} {} {} on {} by {}", row.optimizer, ahead ? "beats" : "is worse than", compare, where,
                       numbers);
  return fmt::format("no significant difference between {} and {} on {}: {}", row.optimizer, compare, where, numbers);
}

/// The warnings on a row's own runs: how many diverged and how many failed.
void add_run_warnings(const ReportRow& row, std::vector<std::string>& warnings) {
  if (row.diverged > 0)
    warnings.push_back(fmt::format("{} {}: {} of {} runs diverged", row.optimizer, row.label, row.diverged, row.runs));
  if (row.failed > 0)
    warnings.push_back(fmt::format("{} {}: {} of {} runs failed", row.optimizer, row.label, row.failed, row.runs));
}

/// The warnings on a paired comparison: too few pairs for the exact Wilcoxon test to reach
/// p < 0.05, and finished seeds left out because the other side lacks them.
void add_pairing_warnings(const ReportRow& row, const ReportRow& base, std::vector<std::string>& warnings) {
  if (row.diff_test != "paired") return;
  if (row.n_pairs < 6 && row.n_pairs >= kMinSeeds)
    warnings.push_back(
        fmt::format("{}: with {} pairs the exact Wilcoxon test cannot reach p < 0.05 (6 or more seeds needed)",
                    row.optimizer, row.n_pairs));
  if (row.n_pairs < row.n || row.n_pairs < base.n)
    warnings.push_back(fmt::format("{}: paired on the {} seeds both have ({} and {} finished)", row.optimizer,
                                   row.n_pairs, row.n, base.n));
}

/// The group's plain-language summaries and warnings, in the order of the rows shown; each
/// selected row other than the baseline gets its sentence (a warning when it says nothing).
void add_sentences(ReportGroup& rg, const ReportRow* base, bool any_val, const AnalysisOptions& options) {
  const std::string& compare = options.compare;
  if (!any_val)
    rg.warnings.push_back(
        "no run in this group has a validation split: configurations were selected by their mean TEST " + rg.metric +
        ", which overstates the selected ones (give the dataset a val_size)");
  if (!base) rg.warnings.push_back("no finished " + compare + " run in this group: nothing to compare against");
  for (auto& row : rg.rows) {
    add_run_warnings(row, rg.warnings);
    if (!row.selected || row.baseline || !base) continue;
    row.summary = summary_of(row, *base, options);
    (too_few_seeds(row, *base) ? rg.warnings : rg.summaries).push_back(row.summary);
    add_pairing_warnings(row, *base, rg.warnings);
  }
}

/// One group of the report: a row per configuration, the selection per family, the comparison
/// with the baseline, then the rows shown with their alpha_hat and the sentences.
ReportGroup report_group(storage::Database& db, const Group& g, const AnalysisOptions& options) {
  const bool any_val = has_validation(g);
  const auto labels = labels_of(g);
  std::vector<ReportRow> rows;
  for (const auto& c : g.configs) rows.push_back(row_of(g, c, labels.at(c.key), any_val, options.level));
  const FamilyRanks by_family = select_per_family(rows, lower_is_better(g.metric));
  const ReportRow* base = mark_baseline(rows, by_family, options.compare);
  if (base)
    for (auto& row : rows)
      if (!row.baseline) compare_with(row, *base, options.level);
  ReportGroup rg;
  rg.label = g.label;
  rg.dataset = g.dataset;
  rg.model = g.model;
  rg.metric = g.metric;
  rg.rows = rows_shown(rows, by_family, options);
  add_alpha_hat(db, g, rg.rows);
  return rg;
}

/// The baseline row of a group's rows, or null.
const ReportRow* baseline_of(const ReportGroup& rg) {
  for (const auto& row : rg.rows)
    if (row.baseline) return &row;
  return nullptr;
}

/// The comparisons the report makes: each group's selected rows against its baseline, with
/// enough seeds to say something.
std::vector<ReportRow*> comparisons(std::vector<ReportGroup>& groups) {
  std::vector<ReportRow*> out;
  for (auto& rg : groups) {
    const ReportRow* base = baseline_of(rg);
    for (auto& row : rg.rows)
      if (base && row.selected && !row.baseline && !too_few_seeds(row, *base)) out.push_back(&row);
  }
  return out;
}

/// Adjusts the p-values of those comparisons together (Holm or Benjamini-Hochberg).
void adjust_p_values(std::vector<ReportGroup>& groups, const std::string& adjust) {
  if (adjust == "none") return;
  const auto rows = comparisons(groups);
  std::vector<double> pt, pw;
  for (const ReportRow* r : rows) {
    pt.push_back(r->p_t);
    pw.push_back(r->p_wilcoxon);
  }
  const auto method = adjust == "holm" ? stats::holm : stats::benjamini_hochberg;
  const auto at = method(pt), aw = method(pw);
  for (size_t i = 0; i < rows.size(); ++i) {
    rows[i]->p_t_adj = at[i];
    rows[i]->p_wilcoxon_adj = aw[i];
  }
}

}  // namespace

std::vector<ReportGroup> analyse(storage::Store& store, const AnalysisOptions& options, const OnDamaged& on_damaged) {
  if (options.select != "best" && options.select != "all")
    throw InputError("--select \"" + options.select + "\": unknown selection; valid: best, all");
  if (options.adjust != "none" && options.adjust != "holm" && options.adjust != "bh")
    throw InputError("--adjust \"" + options.adjust + "\": unknown adjustment; valid: none, holm, bh");
  const auto runs = storage::select_runs(store, options.filter, on_damaged);
  check_runs_match(store, runs, options);
  std::vector<ReportGroup> out;
  for (const auto& [gkey, g] : group_runs(store.database(), runs, options))
    out.push_back(report_group(store.database(), g, options));
  adjust_p_values(out, options.adjust);
  for (auto& rg : out) {
    const bool any_val =
        std::any_of(rg.rows.begin(), rg.rows.end(), [](const ReportRow& r) { return r.selected_by == "val"; });
    add_sentences(rg, baseline_of(rg), any_val, options);
  }
  return out;
}

std::vector<ReportGroup> analyse(storage::Store& store, const AnalysisOptions& options) {
  return analyse(store, options, [&](const storage::RunRecord& r, const std::string& why) {
    throw InputError(store.path() + ": run " + std::to_string(r.id) + ": " + why);
  });
}

}  // namespace htga::analysis

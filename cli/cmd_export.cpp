#include <CLI/CLI.hpp>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "cli/commands.h"
#include "cli/csv.h"
#include "cli/options.h"
#include "cli/report_format.h"
#include "experiments/error.h"
#include "storage/paths.h"
#include "storage/query.h"
#include "storage/store.h"

namespace htga::cli {

void require_database(const std::string& path) {
  storage::check_database_path(path);  // '', :memory:, a folder, /dev/null: bad input, named
  if (!std::filesystem::is_regular_file(path))
    throw InputError(path + ": no such database (run a grid first, or pass --db)");
}

namespace {

/// The flattened configs of the selected runs: one column per key any of them has.
struct ConfigColumns {
  std::vector<std::string> names;                      // sorted
  std::map<int64_t, std::vector<std::string>> values;  // run id -> one value per name

  explicit ConfigColumns(const std::vector<storage::RunRecord>& runs) {
    std::map<int64_t, std::map<std::string, std::string>> flat;
    std::set<std::string> keys;
    for (const auto& r : runs) {
      auto& f = flat[r.id];
      flatten_json(nlohmann::json::parse(r.config_json), "", f);
      f.erase("seed");  // a fixed column already
      for (const auto& [k, v] : f) keys.insert(k);
    }
    names.assign(keys.begin(), keys.end());
    for (const auto& [id, f] : flat) {
      auto& row = values[id];
      for (const auto& k : names) {
        auto it = f.find(k);
        row.push_back(it == f.end() ? "" : it->second);
      }
    }
  }
};

/// Identity and config columns appended to steps, evals and alpha rows with --with-config.
struct RunColumns {
  bool on = false;
  std::map<int64_t, const storage::RunRecord*> runs;
  std::unique_ptr<ConfigColumns> config;

  RunColumns(bool enabled, const std::vector<storage::RunRecord>& selected) : on(enabled) {
    if (!on) return;
    for (const auto& r : selected) runs[r.id] = &r;
    config = std::make_unique<ConfigColumns>(selected);
  }
  void header(std::vector<std::string>& h) const {
    if (!on) return;
    h.insert(h.end(), {"grid", "status", "dataset", "model", "optimizer", "seed"});
    h.insert(h.end(), config->names.begin(), config->names.end());
  }
  void append(CsvWriter& csv, int64_t run_id) const {
    if (!on) return;
    const auto& r = *runs.at(run_id);
    csv.field(r.grid).field(r.status).field(r.dataset).field(r.model).field(r.optimizer).integer(r.seed);
    for (const auto& v : config->values.at(run_id)) csv.field(v);
  }
};

void export_steps(storage::Database& db, const std::vector<int64_t>& ids, const RunColumns& extra, CsvWriter& csv) {
  std::vector<std::string> header{"run_id",    "step",      "epoch",        "loss",  "train_acc", "lr",
                                  "alpha_hat", "grad_norm", "alpha_smooth", "phase", "clip_coef"};
  extra.header(header);
  csv.row(header);
  storage::for_each_step(db, ids, [&](int64_t run_id, const storage::StepRow& r) {
    csv.integer(run_id).integer(r.step).integer(r.epoch).number(r.loss).number(r.train_acc).number(r.lr);
    csv.number(r.alpha_hat).number(r.grad_norm).number(r.alpha_smooth).number(r.phase).number(r.clip_coef);
    extra.append(csv, run_id);
    csv.end_row();
  });
}

void export_evals(storage::Store& store, const std::vector<int64_t>& ids, const RunColumns& extra, CsvWriter& csv) {
  // Evaluation rows joined with the named metrics of the same (epoch, split), one column per
  // metric name; a run's rows are few (epochs x splits), so one run at a time is held.
  auto& db = store.database();
  static const std::set<std::string> kEvalColumns{"loss", "acc", "top5"};
  std::vector<std::string> names;
  for (const auto& n : storage::metric_names(db, ids))
    if (!kEvalColumns.count(n)) names.push_back(n);
  std::vector<std::string> header{"run_id", "epoch", "step", "split", "loss", "acc", "top5", "final"};
  header.insert(header.end(), names.begin(), names.end());
  extra.header(header);
  csv.row(header);
  for (int64_t id : ids) {
    struct Row {
      std::optional<storage::EvalRow> eval;
      std::map<std::string, double> metrics;
    };
    std::map<std::pair<int64_t, std::string>, Row> rows;
    storage::for_each_eval(db, {id}, [&](int64_t, const storage::EvalRow& e) { rows[{e.epoch, e.split}].eval = e; });
    for (const auto& m : store.metrics(id)) rows[{m.epoch, m.split}].metrics[m.name] = m.value;
    for (const auto& [key, row] : rows) {
      auto metric = [&](const std::string& n, double fallback) {
        auto it = row.metrics.find(n);
        return std::isfinite(fallback) || it == row.metrics.end() ? fallback : it->second;
      };
      const double nan = std::numeric_limits<double>::quiet_NaN();
      csv.integer(id).integer(key.first);
      if (row.eval)
        csv.integer(row.eval->step);
      else
        csv.field("");
      csv.field(key.second);
      csv.number(metric("loss", row.eval ? row.eval->loss : nan));
      csv.number(metric("acc", row.eval ? row.eval->acc : nan));
      csv.number(metric("top5", row.eval ? row.eval->top5 : nan));
      if (row.eval)
        csv.integer(row.eval->final);
      else
        csv.field("");
      for (const auto& n : names) csv.number(metric(n, nan));
      extra.append(csv, id);
      csv.end_row();
    }
  }
}

void export_runs(const std::vector<storage::RunRecord>& runs, CsvWriter& csv) {
  const ConfigColumns config(runs);
  std::vector<std::string> header{
      "run_id",       "grid",         "status",     "dataset",          "model",    "optimizer",  "seed",
      "test_acc",     "test_loss",    "train_acc",  "gen_gap",          "metric",   "val_metric", "test_metric",
      "train_time_s", "steps",        "device",     "threads",          "host",     "git_commit", "started_at",
      "finished_at",  "heartbeat_at", "checkpoint", "checkpoint_epoch", "cell_key", "error"};
  header.insert(header.end(), config.names.begin(), config.names.end());
  csv.row(header);
  for (const auto& r : runs) {
    csv.integer(r.id).field(r.grid).field(r.status).field(r.dataset).field(r.model).field(r.optimizer);
    csv.integer(r.seed).number(r.test_acc).number(r.test_loss).number(r.train_acc).number(r.gen_gap);
    csv.field(r.metric).number(r.val_metric).number(r.test_metric).number(r.train_time_s).integer(r.steps);
    csv.field(r.device);
    if (r.threads > 0)
      csv.integer(r.threads);
    else
      csv.field("");
    csv.field(r.host).field(r.git_commit).number(r.started_at).number(r.finished_at);
    csv.number(r.heartbeat_at).field(r.checkpoint);
    if (r.checkpoint_epoch >= 0)
      csv.integer(r.checkpoint_epoch);
    else
      csv.field("");
    csv.field(r.cell_key).field(r.error);
    for (const auto& v : config.values.at(r.id)) csv.field(v);
    csv.end_row();
  }
}

void export_alpha(storage::Store& store, const std::vector<int64_t>& ids, const RunColumns& extra, CsvWriter& csv) {
  std::vector<std::string> header{"run_id", "step", "layer", "name", "numel", "alpha_hat"};
  extra.header(header);
  csv.row(header);
  for (int64_t id : ids) {
    const auto layers = store.layers(id);
    storage::for_each_layer_alpha(store.database(), {id}, [&](int64_t run_id, const storage::LayerAlphaRow& r) {
      const bool known = r.layer >= 0 && r.layer < static_cast<int64_t>(layers.size());
      csv.integer(run_id).integer(r.step).integer(r.layer).field(known ? layers[r.layer].name : "");
      if (known)
        csv.integer(layers[r.layer].numel);
      else
        csv.field("");
      csv.number(r.alpha_hat);
      extra.append(csv, run_id);
      csv.end_row();
    });
  }
}

}  // namespace

long run_export(const ExportOptions& options, std::ostream& stdout_stream) {
  static const std::set<std::string> kTables{"steps", "evals", "runs", "alpha", "summary"};
  if (!kTables.count(options.what))
    throw InputError("export: unknown table \"" + options.what + "\"; valid: steps, evals, runs, alpha, summary");
  require_database(options.db_path);
  const bool to_stdout = options.out == "-";
  const std::string out_path = options.out.empty() ? "results/" + options.what + ".csv" : options.out;
  if (!to_stdout) {
    // Before anything is opened or written: the CSV must not replace the database.
    storage::check_output_path(out_path, {options.db_path});
    if (std::filesystem::is_directory(out_path))
      throw InputError(out_path + ": is a folder; --out names the CSV file to write");
  }
  storage::Store store(options.db_path, storage::Store::Mode::kReadOnly);
  if (const auto unknown = options.filter.unknown_value(store.runs()); !unknown.empty())
    throw InputError(options.db_path + ": " + unknown);  // not an empty file with exit 0
  // A run whose stored config is damaged is named and left out where its config is read.
  auto warn = [&](const storage::RunRecord& r, const std::string& why) {
    std::cerr << "htga: warning: " << options.db_path << ": run " << r.id << " skipped: " << why << std::endl;
  };
  std::unique_ptr<AtomicFile> file;
  if (!to_stdout) file = std::make_unique<AtomicFile>(out_path);
  CsvWriter csv([&](const std::string& text) {
    if (experiments::stop_requested()) throw Interrupted("export interrupted; " + out_path + " not written");
    if (file)
      file->write(text);
    else
      stdout_stream.write(text.data(), static_cast<std::streamsize>(text.size()));
  });

  if (options.what == "summary") {
    AnalysisOptions a = options.analysis;
    a.filter = options.filter;
    write_report_csv(analyse(store, a, warn), csv);
  } else {
    const bool needs_config = options.what == "runs" || options.with_config;
    const auto runs =
        needs_config ? storage::select_runs(store, options.filter, warn) : storage::select_runs(store, options.filter);
    std::vector<int64_t> ids;
    for (const auto& r : runs) ids.push_back(r.id);
    const RunColumns extra(options.with_config && options.what != "runs", runs);
    if (options.what == "steps")
      export_steps(store.database(), ids, extra, csv);
    else if (options.what == "evals")
      export_evals(store, ids, extra, csv);
    else if (options.what == "alpha")
      export_alpha(store, ids, extra, csv);
    else
      export_runs(runs, csv);
  }
  csv.flush();
  if (file)
    file->commit();
  else
    stdout_stream.flush();
  return csv.rows() - 1;  // the header is not a data row
}

long run_export(const ExportOptions& options) { return run_export(options, std::cout); }

void setup_export(CLI::App& app, int& exit_code) {
  auto* exp = app.add_subcommand("export", "Export tables as tidy CSV (one header row; NaN as empty)");
  exp->require_subcommand(1);
  const std::pair<const char*, const char*> tables[] = {
      {"steps",
       "One row per (run, step): run_id, step, epoch, loss, train_acc, lr, alpha_hat, grad_norm, "
       "alpha_smooth, phase, clip_coef"},
      {"evals",
       "One row per (run, epoch, split): loss, acc, top5, final, then one column per named metric (mcc, f1, ...)"},
      {"runs", "One row per run: status, final metrics, provenance, then the config flattened (optimizer.lr, ...)"},
      {"alpha", "One row per (run, step, layer) of runs with scope layer: alpha_hat per parameter tensor"},
      {"summary", "The report's rows: per group and optimizer configuration, n, mean, CI, diff, p-values"}};
  for (const auto& [name, help] : tables) {
    auto opts = std::make_shared<ExportOptions>();
    opts->what = name;
    const std::string what = name;
    auto* sub = exp->add_subcommand(name, help);
    sub->add_option("--db", opts->db_path, "Result database")->capture_default_str();
    sub->add_option("-o,--out", opts->out, "CSV file to write, - for stdout (default results/" + what + ".csv)")
        ->check(non_empty_path());
    auto& f = opts->filter;
    sub->add_option("--dataset", f.datasets, "Only runs on this dataset (repeatable)");
    sub->add_option("--model", f.models, "Only runs of this model (repeatable)");
    sub->add_option("--optimizer", f.optimizers, "Only runs of this optimizer (repeatable)");
    sub->add_option("--grid", f.grids, "Only runs of this grid (repeatable)");
    sub->add_option("--status", f.statuses, "Only runs with this status (repeatable)")
        ->check(CLI::IsMember({"running", "finished", "failed", "diverged", "interrupted"}));
    sub->add_option("--run", f.run_ids, "Only this run id (repeatable)")->check(integer_in(1, INT64_MAX));
    if (what == "steps" || what == "evals" || what == "alpha")
      sub->add_flag(
          "--with-config", opts->with_config,
          "Append each run's grid, status, dataset, model, optimizer, seed and flattened config to every row");
    if (what == "summary") {
      sub->add_option("--compare", opts->analysis.compare, "Baseline optimizer family")->capture_default_str();
      sub->add_option("--metric", opts->analysis.metric, "Metric to compare (default: each run's main metric)");
      sub->add_option("--select", opts->analysis.select, "best or all")
          ->check(CLI::IsMember({"best", "all"}))
          ->capture_default_str();
      sub->add_option("--adjust", opts->analysis.adjust, "p-value adjustment: none, holm or bh")
          ->check(CLI::IsMember({"none", "holm", "bh"}))
          ->capture_default_str();
    }
    sub->callback([opts, &exit_code]() {
      long n = run_export(*opts);
      if (opts->out != "-")
        std::cerr << "wrote " << n << " rows to " << (opts->out.empty() ? "results/" + opts->what + ".csv" : opts->out)
                  << std::endl;
      exit_code = 0;
    });
  }
}

}  // namespace htga::cli

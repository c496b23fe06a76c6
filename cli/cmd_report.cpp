#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>
#include <set>

#include "cli/commands.h"
#include "cli/csv.h"
#include "experiments/error.h"
#include "experiments/grid.h"
#include "storage/store.h"

namespace htga::cli {

using nlohmann::json;

namespace {

struct Row {
  std::string optimizer;          // name
  json config;                    // optimizer config
  std::map<int64_t, double> acc;  // seed -> test accuracy of finished runs
  int runs = 0, diverged = 0, failed = 0;
  double mean = NAN, sd = NAN;
  std::string label;
};

struct Group {
  std::string label;
  std::vector<Row> rows;
};

double mean_of(const std::vector<double>& v) {
  if (v.empty()) return NAN;
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

/// Sample standard deviation (n - 1); NaN for fewer than two values.
double sd_of(const std::vector<double>& v) {
  if (v.size() < 2) return NAN;
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

std::string params_text(const json& cfg, const std::set<std::string>& keys) {
  std::string out;
  for (const auto& k : keys)
    if (cfg.contains(k)) out += (out.empty() ? "" : " ") + k + "=" + cfg[k].dump();
  return out;
}

std::string pct(double v, int decimals = 2) {
  return std::isfinite(v) ? fmt::format("{:.{}f}", 100 * v, decimals) : "-";
}

}  // namespace

void run_report(const ReportOptions& options, std::ostream& out) {
  if (options.format != "table" && options.format != "csv")
    throw InputError("report: unknown format \"" + options.format + "\"; valid: table, csv");
  require_database(options.db_path);
  storage::Store store(options.db_path);
  const auto runs = store.runs();
  if (runs.empty()) throw InputError(options.db_path + ": no runs yet");

  // Group: dataset config x model config x training settings (all but the device).
  std::map<std::string, Group> groups;
  std::set<std::string> optimizer_names;
  for (const auto& r : runs) {
    json cfg = json::parse(r.config_json);
    json train = cfg["train"];
    train.erase("device");
    const std::string gkey = cfg["dataset"].dump() + cfg["model"].dump() + train.dump();
    Group& g = groups[gkey];
    if (g.label.empty()) {
      // Only what differs from the defaults: the settings a person wrote in the grid.
      const json lean = experiments::without_defaults(cfg);
      json d = lean["dataset"], m = lean["model"], t = lean["train"];
      for (json* part : {&d, &m}) part->erase("name");
      t.erase("device");
      g.label = fmt::format("{}/{}", r.dataset, r.model);
      for (const auto& [what, part] :
           {std::pair<const char*, const json*>{"dataset", &d}, {"model", &m}, {"train", &t}})
        if (!part->empty()) g.label += fmt::format("  {} {}", what, part->dump());
      g.label += fmt::format("  epochs={} batch_size={}", train["epochs"].dump(), train["batch_size"].dump());
    }
    const std::string okey = cfg["optimizer"].dump();
    auto it = std::find_if(g.rows.begin(), g.rows.end(), [&](const Row& row) { return row.config.dump() == okey; });
    if (it == g.rows.end()) {
      g.rows.push_back(Row{r.optimizer, cfg["optimizer"], {}, 0, 0, 0, NAN, NAN, ""});
      it = std::prev(g.rows.end());
    }
    optimizer_names.insert(r.optimizer);
    ++it->runs;
    if (r.status == "finished" && std::isfinite(r.test_acc)) it->acc[r.seed] = r.test_acc;
    if (r.status == "diverged") ++it->diverged;
    if (r.status == "failed") ++it->failed;
  }
  if (!optimizer_names.count(options.compare)) {
    std::string have;
    for (const auto& n : optimizer_names) have += (have.empty() ? "" : ", ") + n;
    throw InputError(options.db_path + ": --compare " + options.compare +
                     ": no runs of that optimizer; the database has: " + have);
  }

  if (options.format == "csv")
    out << csv_line({"group", "optimizer", "config", "seeds", "runs", "diverged", "failed", "mean_test_acc",
                     "sd_test_acc", "diff_vs_baseline", "pairs"});
  for (auto& [gkey, g] : groups) {
    // Label each row by the parameters that vary among the rows of the same optimizer.
    std::map<std::string, std::set<std::string>> varying;
    for (const Row& a : g.rows)
      for (const Row& b : g.rows)
        if (a.optimizer == b.optimizer)
          for (const auto& [k, v] : a.config.items())
            if (k != "name" && (!b.config.contains(k) || b.config[k] != v)) varying[a.optimizer].insert(k);
    for (Row& row : g.rows) {
      std::vector<double> v;
      for (const auto& [seed, acc] : row.acc) v.push_back(acc);
      row.mean = mean_of(v);
      row.sd = sd_of(v);
      std::set<std::string> keys = varying[row.optimizer];
      keys.insert("lr");
      row.label = params_text(row.config, keys);
    }
    std::sort(g.rows.begin(), g.rows.end(), [](const Row& a, const Row& b) {
      return a.optimizer != b.optimizer ? a.optimizer < b.optimizer : a.label < b.label;
    });
    // The baseline: the compared optimizer's configuration with the best mean test accuracy.
    const Row* base = nullptr;
    for (const Row& row : g.rows)
      if (row.optimizer == options.compare && std::isfinite(row.mean) && (!base || row.mean > base->mean)) base = &row;

    if (options.format == "table") {
      out << g.label << "\n";
      out << fmt::format("  baseline: {}\n", base ? options.compare + " " + base->label + " (best mean test accuracy)"
                                                  : options.compare + ": no finished runs in this group");
      out << fmt::format("  {:<10} {:<34} {:>5} {:>9} {:>7} {:>13}\n", "optimizer", "config", "seeds", "test acc%",
                         "sd", "diff vs base");
    }
    for (const Row& row : g.rows) {
      double diff = NAN;
      int pairs = 0;
      if (base && &row != base) {
        std::vector<double> d;
        for (const auto& [seed, acc] : row.acc)
          if (auto b = base->acc.find(seed); b != base->acc.end()) d.push_back(acc - b->second);
        diff = mean_of(d);
        pairs = static_cast<int>(d.size());
      }
      std::string seeds = std::to_string(row.acc.size()) + "/" + std::to_string(row.runs);
      if (options.format == "csv") {
        out << csv_line({g.label, row.optimizer, row.label, std::to_string(row.acc.size()), std::to_string(row.runs),
                         std::to_string(row.diverged), std::to_string(row.failed), csv_number(row.mean),
                         csv_number(row.sd), csv_number(diff), std::to_string(pairs)});
        continue;
      }
      std::string diff_text = &row == base          ? "baseline"
                              : std::isfinite(diff) ? fmt::format("{:+.2f} ({}p)", 100 * diff, pairs)
                                                    : "-";
      std::string notes;
      if (row.diverged) notes += fmt::format("  {} diverged", row.diverged);
      if (row.failed) notes += fmt::format("  {} failed", row.failed);
      out << fmt::format("  {:<10} {:<34} {:>5} {:>9} {:>7} {:>13}{}\n", row.optimizer, row.label, seeds, pct(row.mean),
                         pct(row.sd), diff_text, notes);
    }
    if (options.format == "table") out << "\n";
  }
  if (options.format == "table")
    out << "seeds: finished/all runs; sd across seeds; diff: mean over seeds of (test acc - baseline's), in points,"
           " (np) = seeds paired\n";
}

void setup_report(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<ReportOptions>();
  auto* rep = app.add_subcommand("report", "Compare optimizers across seeds: test accuracy mean, spread, difference");
  rep->add_option("--db", opts->db_path, "Result database")->capture_default_str();
  rep->add_option("--compare", opts->compare, "Baseline optimizer name")->capture_default_str();
  rep->add_option("--format", opts->format, "table or csv")->capture_default_str();
  rep->callback([opts, &exit_code]() {
    run_report(*opts, std::cout);
    exit_code = 0;
  });
}

}  // namespace htga::cli

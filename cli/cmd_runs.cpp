// `htga runs` (list runs with filters) and `htga show RUN` (everything stored about one run).

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <ctime>
#include <iostream>
#include <map>

#include "cli/commands.h"
#include "cli/options.h"
#include "experiments/analysis/analysis.h"
#include "experiments/error.h"
#include "experiments/grid.h"
#include "storage/query.h"
#include "storage/store.h"

namespace htga::cli {

using nlohmann::json;

namespace {

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

std::string time_of(double unix_s) {
  if (!std::isfinite(unix_s) || unix_s <= 0) return "-";
  const std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return std::string(buf) + " UTC";
}

std::string age_of(double unix_s) {
  if (!std::isfinite(unix_s) || unix_s <= 0) return "-";
  const double s = now_seconds() - unix_s;
  if (s < 120) return fmt::format("{:.0f}s ago", s);
  if (s < 7200) return fmt::format("{:.0f}m ago", s / 60);
  if (s < 172800) return fmt::format("{:.1f}h ago", s / 3600);
  return fmt::format("{:.0f}d ago", s / 86400);
}

std::string value_text(double v, const std::string& metric) {
  if (!std::isfinite(v)) return "-";
  return analysis::is_fraction_metric(metric) ? fmt::format("{:.2f}%", 100 * v) : fmt::format("{:.4g}", v);
}

/// The optimizer object of a config, or an empty object when it has none (or not an object).
json optimizer_of(const json& cfg) {
  auto it = cfg.find("optimizer");
  return it != cfg.end() && it->is_object() ? *it : json::object();
}

/// Text of a JSON value in a table or a message: invalid UTF-8 replaced, never thrown.
std::string text_of(const json& v) { return v.dump(-1, ' ', false, json::error_handler_t::replace); }

/// The learning rate and the optimizer's other parameters that are not at their defaults:
/// "lr=0.1 beta=1". `cfg` is a JSON object (the run's config, see storage::config_problem).
std::string optimizer_params(json cfg) {
  const json lr = optimizer_of(cfg).value("lr", json());
  try {
    cfg = experiments::without_defaults(cfg);
  } catch (const std::exception&) {
  }
  std::string out = lr.is_null() ? "" : "lr=" + text_of(lr);
  const json opt = optimizer_of(cfg);  // kept: items() refers into it
  for (const auto& [k, v] : opt.items())
    if (k != "name" && k != "lr")
      out += (out.empty() ? "" : " ") + k + "=" + (v.is_string() ? v.get<std::string>() : text_of(v));
  return out;
}

/// The run's config, or null when it is damaged (storage::config_problem says why).
json config_of(const storage::RunRecord& r) {
  return storage::config_problem(r).empty() ? json::parse(r.config_json) : json();
}

json num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

/// `config`: the parsed config (null when damaged).
json run_json(const storage::RunRecord& r, const json& config) {
  return {{"id", r.id},
          {"cell_key", r.cell_key},
          {"grid", r.grid},
          {"status", r.status},
          {"error", r.error.empty() ? json(nullptr) : json(r.error)},
          {"dataset", r.dataset},
          {"model", r.model},
          {"optimizer", r.optimizer},
          {"seed", r.seed},
          {"config", config},
          {"device", r.device},
          {"threads", r.threads > 0 ? nlohmann::json(r.threads) : nlohmann::json()},
          {"host", r.host},
          {"pid", r.pid},
          {"git_commit", r.git_commit},
          {"htga_version", r.htga_version},
          {"torch_version", r.torch_version},
          {"started_at", num(r.started_at)},
          {"finished_at", num(r.finished_at)},
          {"heartbeat_at", num(r.heartbeat_at)},
          {"steps", r.steps},
          {"train_time_s", num(r.train_time_s)},
          {"metric", r.metric},
          {"val_metric", num(r.val_metric)},
          {"test_metric", num(r.test_metric)},
          {"test_acc", num(r.test_acc)},
          {"test_loss", num(r.test_loss)},
          {"train_acc", num(r.train_acc)},
          {"gen_gap", num(r.gen_gap)},
          {"checkpoint", r.checkpoint.empty() ? json(nullptr) : json(r.checkpoint)},
          {"checkpoint_epoch", r.checkpoint_epoch >= 0 ? json(r.checkpoint_epoch) : json(nullptr)},
          {"checkpoint_step", r.checkpoint_epoch >= 0 ? json(r.checkpoint_step) : json(nullptr)}};
}

}  // namespace

void run_runs(const RunsOptions& options, std::ostream& out) {
  if (options.format != "table" && options.format != "json")
    throw InputError("runs: unknown format \"" + options.format + "\"; valid: table, json");
  require_database(options.db_path);
  storage::Store store(options.db_path, storage::Store::Mode::kReadOnly);
  if (const auto unknown = options.filter.unknown_value(store.runs()); !unknown.empty())
    throw InputError(options.db_path + ": " + unknown);
  // A run whose stored config is damaged is named and left out: the others are listed.
  const auto runs =
      storage::select_runs(store, options.filter, [&](const storage::RunRecord& r, const std::string& why) {
        std::cerr << "htga: warning: " << options.db_path << ": run " << r.id << " skipped: " << why << std::endl;
      });
  if (options.format == "json") {
    json a = json::array();
    for (const auto& r : runs) a.push_back(run_json(r, json::parse(r.config_json)));
    out << a.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    return;
  }
  std::vector<std::vector<std::string>> rows{{"id", "status", "grid", "dataset/model", "optimizer", "params", "seed",
                                              "val", "test", "steps", "time", "last seen"}};
  for (const auto& r : runs) {
    rows.push_back({std::to_string(r.id), r.status, r.grid, r.dataset + "/" + r.model, r.optimizer,
                    optimizer_params(json::parse(r.config_json)), std::to_string(r.seed),
                    value_text(r.val_metric, r.metric), value_text(r.test_metric, r.metric), std::to_string(r.steps),
                    std::isfinite(r.train_time_s) ? fmt::format("{:.1f}s", r.train_time_s) : "-",
                    age_of(r.heartbeat_at)});
  }
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& row : rows)
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      const bool right = c == 0 || c == 6 || c == 7 || c == 8 || c == 9 || c == 10;
      const std::string pad(width[c] - row[c].size(), ' ');
      line += (c ? "  " : "") + (right ? pad + row[c] : row[c] + pad);
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << "\n";
  }
  std::map<std::string, int> by_status;
  for (const auto& r : runs) ++by_status[r.status];
  std::string counts;
  for (const auto& [s, n] : by_status) counts += fmt::format("{}{} {}", counts.empty() ? "" : ", ", n, s);
  out << fmt::format("{} runs{}{}\n", runs.size(), counts.empty() ? "" : ": ", counts);
}

namespace {

/// What `htga show` prints of one run.
struct Shown {
  storage::RunRecord r;
  json config;
  std::string damage;  // why its stored config cannot be read ("" when it can)
  std::vector<storage::EvalRow> evals;
  std::vector<storage::MetricRow> metrics;
  int64_t step_rows = 0;
  double alpha = NAN;  // median alpha_hat over the last 10% of steps
};

void show_json(const Shown& s, std::ostream& out) {
  json j = run_json(s.r, s.config);
  if (!s.damage.empty()) {
    j["config_error"] = s.damage;
    j["config_text"] = s.r.config_json;
  }
  json ev = json::array();
  for (const auto& e : s.evals)
    ev.push_back({{"epoch", e.epoch},
                  {"step", e.step},
                  {"split", e.split},
                  {"loss", num(e.loss)},
                  {"acc", num(e.acc)},
                  {"top5", num(e.top5)},
                  {"final", e.final}});
  json me = json::array();
  for (const auto& m : s.metrics)
    me.push_back({{"epoch", m.epoch}, {"split", m.split}, {"name", m.name}, {"value", num(m.value)}});
  j["evals"] = ev;
  j["metrics"] = me;
  j["step_rows"] = s.step_rows;
  j["alpha_hat_median_last10"] = num(s.alpha);
  out << j.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
}

void show_fields(const Shown& s, std::ostream& out) {
  const auto& r = s.r;
  auto field = [&](const std::string& name, const std::string& value) {
    out << fmt::format("{:<12}{}\n", name, value);
  };
  field("run", fmt::format("{}  (grid {}, cell {})", r.id, r.grid, r.cell_key));
  field("status", r.status);
  if (!r.error.empty()) field("error", r.error);
  field("what",
        fmt::format("{}/{}  {} {}  seed {}", r.dataset, r.model, r.optimizer,
                    s.config.is_object() ? optimizer_params(s.config) : std::string("(config damaged)"), r.seed));
  field("started", time_of(r.started_at));
  if (std::isfinite(r.finished_at) && r.finished_at > 0) field("finished", time_of(r.finished_at));
  field("heartbeat", std::isfinite(r.heartbeat_at) ? time_of(r.heartbeat_at) + " (" + age_of(r.heartbeat_at) + ")"
                                                   : std::string("-"));
  field("where", fmt::format("host {}  pid {}  device {}  threads {}", r.host.empty() ? "-" : r.host, r.pid,
                             r.device.empty() ? "-" : r.device, r.threads > 0 ? std::to_string(r.threads) : "-"));
  field("built from", fmt::format("htga {}  git {}  torch {}", r.htga_version,
                                  r.git_commit.empty() ? "unknown" : r.git_commit, r.torch_version));
  field("training", fmt::format("{} steps ({} step rows){}", r.steps, s.step_rows,
                                std::isfinite(r.train_time_s) ? fmt::format(", {:.1f}s", r.train_time_s) : ""));
  field("metric", fmt::format("{}: val {}, test {}", r.metric, value_text(r.val_metric, r.metric),
                              value_text(r.test_metric, r.metric)));
  field("accuracy",
        fmt::format("test {}, train {}, gap {}; test loss {}", value_text(r.test_acc, "acc"),
                    value_text(r.train_acc, "acc"), value_text(r.gen_gap, "acc"), value_text(r.test_loss, "loss")));
  field("alpha_hat",
        std::isfinite(s.alpha) ? fmt::format("{:.3f} (median over the last 10% of steps)", s.alpha) : std::string("-"));
  field("checkpoint", r.checkpoint.empty() ? std::string("none")
                                           : fmt::format("{} (after epoch {}, step {})", r.checkpoint,
                                                         r.checkpoint_epoch, r.checkpoint_step));
}

void show_tables(const Shown& s, std::ostream& out) {
  if (s.damage.empty())
    out << "config\n" << s.config.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
  else
    out << "config (damaged: " << s.damage << ")\n" << s.r.config_json << "\n";
  if (!s.evals.empty()) {
    out << "evaluations\n";
    out << fmt::format("  {:>5}  {:<8} {:>8} {:>9} {:>9} {:>8}  {}\n", "epoch", "split", "step", "loss", "acc", "top5",
                       "final");
    for (const auto& e : s.evals)
      out << fmt::format("  {:>5}  {:<8} {:>8} {:>9} {:>9} {:>8}  {}\n", e.epoch, e.split, e.step,
                         value_text(e.loss, "loss"), value_text(e.acc, "acc"), value_text(e.top5, "top5"),
                         e.final ? "yes" : "");
  }
  if (!s.metrics.empty()) {
    out << "metrics\n";
    for (const auto& m : s.metrics)
      out << fmt::format("  {:>5}  {:<16} {:<10} {}\n", m.epoch, m.split, m.name, value_text(m.value, m.name));
  }
}

}  // namespace

void run_show(const ShowOptions& options, std::ostream& out) {
  require_database(options.db_path);
  storage::Store store(options.db_path, storage::Store::Mode::kReadOnly);
  const auto run = store.run(options.run_id);
  if (!run)
    throw InputError(options.db_path + ": no run with id " + std::to_string(options.run_id) + " (see htga runs)");
  Shown s;
  s.r = *run;
  // A damaged config is shown as the text it is, with a warning; everything else as usual.
  s.damage = storage::config_problem(s.r);
  if (!s.damage.empty())
    std::cerr << "htga: warning: " << options.db_path << ": run " << s.r.id << ": " << s.damage << std::endl;
  s.config = config_of(s.r);
  s.evals = store.evals(s.r.id);
  s.metrics = store.metrics(s.r.id);
  s.step_rows = storage::step_stats(store.database(), s.r.id).rows;
  s.alpha = storage::tail_alpha_median(store.database(), s.r.id);
  if (options.json) return show_json(s, out);
  show_fields(s, out);
  show_tables(s, out);
}

void setup_runs(CLI::App& app, int& exit_code) {
  auto ro = std::make_shared<RunsOptions>();
  auto* runs = app.add_subcommand("runs", "List the runs in the database, with filters");
  runs->add_option("--db", ro->db_path, "Result database")->capture_default_str();
  runs->add_option("--status", ro->filter.statuses, "Only runs with this status (repeatable)")
      ->check(CLI::IsMember({"running", "finished", "failed", "diverged", "interrupted"}));
  runs->add_option("--grid", ro->filter.grids, "Only runs of this grid (repeatable)");
  runs->add_option("--optimizer", ro->filter.optimizers, "Only runs of this optimizer (repeatable)");
  runs->add_option("--dataset", ro->filter.datasets, "Only runs on this dataset (repeatable)");
  runs->add_option("--model", ro->filter.models, "Only runs of this model (repeatable)");
  runs->add_option("--format", ro->format, "table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  runs->callback([ro, &exit_code]() {
    run_runs(*ro, std::cout);
    exit_code = 0;
  });

  auto so = std::make_shared<ShowOptions>();
  auto* show =
      app.add_subcommand("show", "Everything stored about one run: config, status, metrics, error, checkpoint");
  show->add_option("run", so->run_id, "Run id (see htga runs)")->required()->check(integer_in(1, INT64_MAX));
  show->add_option("--db", so->db_path, "Result database")->capture_default_str();
  show->add_flag("--json", so->json, "Print one JSON object");
  show->callback([so, &exit_code]() {
    run_show(*so, std::cout);
    exit_code = 0;
  });
}

}  // namespace htga::cli

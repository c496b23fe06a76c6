#include "storage/query.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

namespace htga::storage {

namespace {

template <typename T>
bool any_of_or_empty(const std::vector<T>& allowed, const T& value) {
  return allowed.empty() || std::find(allowed.begin(), allowed.end(), value) != allowed.end();
}

}  // namespace

bool RunFilter::matches(const RunRecord& run) const {
  return any_of_or_empty(datasets, run.dataset) && any_of_or_empty(models, run.model) &&
         any_of_or_empty(optimizers, run.optimizer) && any_of_or_empty(grids, run.grid) &&
         any_of_or_empty(statuses, run.status) && any_of_or_empty(run_ids, run.id);
}

std::string RunFilter::unknown_value(const std::vector<RunRecord>& runs) const {
  auto check = [&](const char* option, const std::vector<std::string>& wanted,
                   std::string (*field)(const RunRecord&)) -> std::string {
    std::set<std::string> present;
    for (const auto& r : runs) present.insert(field(r));
    for (const auto& w : wanted) {
      if (present.count(w)) continue;
      std::string list;
      for (const auto& p : present) list += (list.empty() ? "" : ", ") + p;
      return std::string(option) + " " + w + ": no run has it; present: " + (list.empty() ? "(none)" : list);
    }
    return "";
  };
  for (const std::string& m : {check("--dataset", datasets, [](const RunRecord& r) { return r.dataset; }),
                               check("--model", models, [](const RunRecord& r) { return r.model; }),
                               check("--optimizer", optimizers, [](const RunRecord& r) { return r.optimizer; }),
                               check("--grid", grids, [](const RunRecord& r) { return r.grid; })})
    if (!m.empty()) return m;
  for (int64_t id : run_ids) {
    bool found = false;
    for (const auto& r : runs) found = found || r.id == id;
    if (!found) return "--run " + std::to_string(id) + ": no such run (see htga runs)";
  }
  return "";
}

std::vector<RunRecord> select_runs(Store& store, const RunFilter& filter) {
  // The runs table is small (one row per cell); the filter reads better in C++ than as SQL
  // assembled from optional clauses.
  std::vector<RunRecord> out;
  for (auto& r : store.runs())
    if (filter.matches(r)) out.push_back(std::move(r));
  return out;
}

std::string config_problem(const RunRecord& run) {
  // The same parser every reader of the config uses: what passes here parses there.
  nlohmann::json cfg;
  try {
    cfg = nlohmann::json::parse(run.config_json);
  } catch (const nlohmann::json::exception& e) {
    std::string why = e.what();
    const auto bracket = why.find("] ");  // "[json.exception.parse_error.101] parse error at ..."
    if (why.rfind("[json.", 0) == 0 && bracket != std::string::npos) why = why.substr(bracket + 2);
    return "its stored config is not valid JSON (" + why + ")";
  }
  if (!cfg.is_object()) return std::string("its stored config is not a JSON object (") + cfg.type_name() + ")";
  return "";
}

std::vector<RunRecord> select_runs(Store& store, const RunFilter& filter,
                                   const std::function<void(const RunRecord&, const std::string&)>& on_damaged) {
  std::vector<RunRecord> out;
  for (auto& r : select_runs(store, filter)) {
    const std::string why = config_problem(r);
    if (why.empty())
      out.push_back(std::move(r));
    else if (on_damaged)
      on_damaged(r, why);
  }
  return out;
}

void for_each_step(Database& db, const std::vector<int64_t>& run_ids,
                   const std::function<void(int64_t, const StepRow&)>& fn) {
  Statement q(db,
              "SELECT step, epoch, loss, train_acc, lr, alpha_hat, grad_norm, alpha_smooth, phase, clip_coef "
              "FROM steps WHERE run_id = ?1 ORDER BY step");
  for (int64_t id : run_ids) {
    q.reset();
    q.bind(1, id);
    while (q.step()) {
      StepRow r;
      r.step = q.get_int(0);
      r.epoch = q.get_int(1);
      r.loss = q.get_double(2);
      r.train_acc = q.get_double(3);
      r.lr = q.get_double(4);
      r.alpha_hat = q.get_double(5);
      r.grad_norm = q.get_double(6);
      r.alpha_smooth = q.get_double(7);
      r.phase = q.get_double(8);
      r.clip_coef = q.get_double(9);
      fn(id, r);
    }
  }
}

void for_each_eval(Database& db, const std::vector<int64_t>& run_ids,
                   const std::function<void(int64_t, const EvalRow&)>& fn) {
  Statement q(db,
              "SELECT epoch, step, split, loss, acc, top5, final FROM evals WHERE run_id = ?1 "
              "ORDER BY epoch, split");
  for (int64_t id : run_ids) {
    q.reset();
    q.bind(1, id);
    while (q.step()) {
      EvalRow r;
      r.epoch = q.get_int(0);
      r.step = q.get_int(1);
      r.split = q.get_text(2);
      r.loss = q.get_double(3);
      r.acc = q.get_double(4);
      r.top5 = q.get_double(5);
      r.final = q.get_int(6) != 0;
      fn(id, r);
    }
  }
}

void for_each_layer_alpha(Database& db, const std::vector<int64_t>& run_ids,
                          const std::function<void(int64_t, const LayerAlphaRow&)>& fn) {
  Statement q(db, "SELECT step, layer, alpha_hat FROM alpha_layers WHERE run_id = ?1 ORDER BY step, layer");
  for (int64_t id : run_ids) {
    q.reset();
    q.bind(1, id);
    while (q.step()) fn(id, {q.get_int(0), q.get_int(1), q.get_double(2)});
  }
}

std::vector<std::string> metric_names(Database& db, const std::vector<int64_t>& run_ids) {
  Statement q(db, "SELECT DISTINCT name FROM metrics WHERE run_id = ?1");
  std::vector<std::string> names;
  for (int64_t id : run_ids) {
    q.reset();
    q.bind(1, id);
    while (q.step()) names.push_back(q.get_text(0));
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

double tail_alpha_median(Database& db, int64_t run_id, double fraction) {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  int64_t first = 0, last = -1;
  {
    Statement q(db, "SELECT min(step), max(step) FROM steps WHERE run_id = ?1");
    q.bind(1, run_id);
    if (!q.step() || q.is_null(1)) return kNaN;
    first = q.get_int(0);
    last = q.get_int(1);
  }
  const int64_t span = last - first + 1;
  const int64_t window = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(fraction * static_cast<double>(span))));
  Statement q(db, "SELECT alpha_hat FROM steps WHERE run_id = ?1 AND step > ?2 AND alpha_hat IS NOT NULL");
  q.bind(1, run_id);
  q.bind(2, last - window);
  std::vector<double> v;
  while (q.step()) v.push_back(q.get_double(0));
  if (v.empty()) return kNaN;
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + mid, v.end());
  if (v.size() % 2) return v[mid];
  return (*std::max_element(v.begin(), v.begin() + mid) + v[mid]) / 2;
}

double final_metric(Database& db, int64_t run_id, const std::string& split, const std::string& name) {
  if (name == "acc" || name == "loss" || name == "top5") {
    // Column names are chosen from this fixed set, never from user text.
    const std::string sql = "SELECT " + name + " FROM evals WHERE run_id = ?1 AND split = ?2 AND " + name +
                            " IS NOT NULL ORDER BY final DESC, epoch DESC LIMIT 1";
    Statement q(db, sql.c_str());
    q.bind(1, run_id);
    q.bind(2, split);
    if (q.step()) return q.get_double(0);
  }
  Statement q(db,
              "SELECT value FROM metrics WHERE run_id = ?1 AND split = ?2 AND name = ?3 AND value IS NOT NULL "
              "ORDER BY epoch DESC LIMIT 1");
  q.bind(1, run_id);
  q.bind(2, split);
  q.bind(3, name);
  if (q.step()) return q.get_double(0);
  return std::numeric_limits<double>::quiet_NaN();
}

StepStats step_stats(Database& db, int64_t run_id) {
  Statement q(db, "SELECT count(*), min(step), max(step) FROM steps WHERE run_id = ?1");
  q.bind(1, run_id);
  StepStats s;
  if (q.step() && q.get_int(0) > 0) {
    s.rows = q.get_int(0);
    s.first = q.get_int(1);
    s.last = q.get_int(2);
  }
  return s;
}

}  // namespace htga::storage

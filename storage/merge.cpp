#include "storage/merge.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

namespace htga::storage {

namespace {

bool is_result(const std::string& status) { return status == "finished" || status == "diverged"; }

struct Seen {
  std::string file, status;
  int64_t steps = 0;
  double test = NAN;
};

bool same_value(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

std::vector<std::string> columns(Database& db, const std::string& table) {
  Statement q(db, ("PRAGMA main.table_info(" + table + ")").c_str());
  std::vector<std::string> out;
  while (q.step()) out.push_back(q.get_text(1));
  return out;
}

std::string join(const std::vector<std::string>& v, const std::string& prefix = "") {
  std::string s;
  for (const auto& c : v) s += (s.empty() ? "" : ", ") + prefix + c;
  return s;
}

}  // namespace

std::vector<MergeStats> merge_databases(Store& out, const std::vector<std::string>& inputs) {
  namespace fs = std::filesystem;
  Database& db = out.database();
  std::error_code ec;
  // Every input is read and checked before anything is written.
  std::map<std::string, Seen> results;  // cell key -> the one result it may have
  auto note = [&](const std::string& file, const RunRecord& r) {
    if (!is_result(r.status)) return;
    Seen s{file, r.status, r.steps, r.test_metric};
    auto [it, fresh] = results.emplace(r.cell_key, s);
    if (fresh) return;
    const Seen& o = it->second;
    if (o.status != s.status || o.steps != s.steps || !same_value(o.test, s.test))
      throw OpenError(file + ": cell " + r.cell_key + " (" + r.dataset + "/" + r.model + "/" + r.optimizer + " seed " +
                      std::to_string(r.seed) + ") conflicts with " + o.file + ": " + s.status + ", " +
                      std::to_string(s.steps) + " steps, test " + std::to_string(s.test) + " against " + o.status +
                      ", " + std::to_string(o.steps) + " steps, test " + std::to_string(o.test));
  };
  for (const auto& r : out.runs()) note(out.path(), r);
  for (const auto& in : inputs) {
    if (!fs::exists(in, ec)) throw OpenError(in + ": no such database");
    if (fs::equivalent(in, out.path(), ec)) throw OpenError(in + ": is the output database itself");
    Store src(in);
    for (const auto& r : src.runs()) note(in, r);
  }

  const auto run_cols = [&] {
    auto c = columns(db, "runs");
    c.erase(std::remove(c.begin(), c.end(), "id"), c.end());
    return c;
  }();
  std::vector<MergeStats> stats;
  for (const auto& in : inputs) {
    MergeStats st;
    {
      Statement a(db, "ATTACH DATABASE ?1 AS src");
      a.bind(1, in);
      a.run();
    }
    try {
      Transaction tx(db);
      std::vector<std::pair<int64_t, std::string>> src_runs;  // (id, cell key)
      {
        Statement q(db, "SELECT id, cell_key FROM src.runs ORDER BY id");
        while (q.step()) src_runs.push_back({q.get_int(0), q.get_text(1)});
      }
      for (const auto& [src_id, key] : src_runs) {
        std::string src_status, dst_status;
        int64_t dst_id = 0;
        {
          Statement q(db, "SELECT status FROM src.runs WHERE id = ?1");
          q.bind(1, src_id);
          q.step();
          src_status = q.get_text(0);
        }
        {
          Statement q(db, "SELECT id, status FROM main.runs WHERE cell_key = ?1");
          q.bind(1, key);
          if (q.step()) {
            dst_id = q.get_int(0);
            dst_status = q.get_text(1);
          }
        }
        if (dst_id != 0) {
          if (is_result(dst_status) || !is_result(src_status)) {
            ++(is_result(dst_status) && is_result(src_status) ? st.identical : st.kept);
            continue;
          }
          for (const char* t : {"steps", "evals", "metrics", "alpha_layers", "layers"}) {
            Statement d(db, (std::string("DELETE FROM main.") + t + " WHERE run_id = ?1").c_str());
            d.bind(1, dst_id);
            d.run();
          }
          Statement d(db, "DELETE FROM main.runs WHERE id = ?1");
          d.bind(1, dst_id);
          d.run();
          ++st.replaced;
        } else {
          ++st.added;
        }
        {
          Statement ins(db, ("INSERT INTO main.runs (" + join(run_cols) + ") SELECT " + join(run_cols) +
                             " FROM src.runs WHERE id = ?1")
                                .c_str());
          ins.bind(1, src_id);
          ins.run();
        }
        const int64_t new_id = db.last_insert_rowid();
        for (const char* t : {"layers", "steps", "evals", "metrics", "alpha_layers"}) {
          auto cols = columns(db, t);
          std::vector<std::string> rest;
          for (const auto& c : cols)
            if (c != "run_id") rest.push_back(c);
          Statement ins(db, ("INSERT INTO main." + std::string(t) + " (run_id, " + join(rest) + ") SELECT ?1, " +
                             join(rest) + " FROM src." + t + " WHERE run_id = ?2")
                                .c_str());
          ins.bind(1, new_id);
          ins.bind(2, src_id);
          ins.run();
        }
      }
      tx.commit();
    } catch (...) {
      db.exec("DETACH DATABASE src");
      throw;
    }
    db.exec("DETACH DATABASE src");
    stats.push_back(st);
  }
  return stats;
}

}  // namespace htga::storage

#include "storage/merge.h"

#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>

#include "storage/paths.h"

namespace htga::storage {

namespace {

namespace fs = std::filesystem;

struct Seen {
  std::string file, status;
  int64_t steps = 0;
  double test = NAN;
};

bool same_value(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

std::vector<std::string> columns(Database& db, const std::string& schema, const std::string& table) {
  Statement q(db, "SELECT name FROM pragma_table_info(?1, ?2)");
  q.bind(1, table);
  q.bind(2, schema);
  std::vector<std::string> out;
  while (q.step()) out.push_back(q.get_text(0));
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& c : v) s += (s.empty() ? "" : ", ") + c;
  return s;
}

/// One input, open read-only for the whole merge (a temporary copy of an old one lives as long).
struct Input {
  std::string path;
  std::unique_ptr<Store> store;
};

/// Checks the input paths against the output and opens each read-only: a missing, foreign or
/// newer input is refused here, before anything is written.
std::vector<Input> open_inputs(const std::vector<std::string>& inputs, const std::string& out_path) {
  std::vector<Input> out;
  for (const auto& in : inputs) {
    check_database_path(in);
    std::error_code ec;
    if (!fs::exists(in, ec)) throw OpenError(in + ": no such database");
    if (same_file(in, out_path)) throw OpenError(in + ": is the output database itself");
    try {
      check_output_path(out_path, {in});
    } catch (const OpenError&) {
      throw OpenError(out_path + ": the output database is a file of the input " + in);
    }
    out.push_back({in, std::make_unique<Store>(in, Store::Mode::kReadOnly)});
  }
  return out;
}

/// Every result for one cell must agree, across the output's runs and every input's.
void check_conflicts(const std::vector<std::pair<std::string, std::vector<RunRecord>>>& sources) {
  std::map<std::string, Seen> results;  // cell key -> the one result it may have
  for (const auto& [file, runs] : sources) {
    for (const auto& r : runs) {
      if (!is_done(r.status)) continue;
      Seen s{file, r.status, r.steps, r.test_metric};
      auto [it, fresh] = results.emplace(r.cell_key, s);
      if (fresh) continue;
      const Seen& o = it->second;
      if (o.status != s.status || o.steps != s.steps || !same_value(o.test, s.test))
        throw OpenError(file + ": cell " + r.cell_key + " (" + r.dataset + "/" + r.model + "/" + r.optimizer +
                        " seed " + std::to_string(r.seed) + ") conflicts with " + o.file + ": " + s.status + ", " +
                        std::to_string(s.steps) + " steps, test " + std::to_string(s.test) + " against " + o.status +
                        ", " + std::to_string(o.steps) + " steps, test " + std::to_string(o.test));
    }
  }
}

/// Copies one input into the output's connection in one transaction. The input is attached
/// through its read-only URI; only the columns both schemas have are copied (an input read as
/// it is may lack the newest ones, which then take their defaults).
/// The columns of `table` that both main and src have, but `skip`.
std::vector<std::string> shared_columns(Database& db, const std::string& table, const std::vector<std::string>& skip) {
  const auto src = columns(db, "src", table);
  std::vector<std::string> out;
  for (const auto& c : columns(db, "main", table))
    if (std::find(skip.begin(), skip.end(), c) == skip.end() && std::find(src.begin(), src.end(), c) != src.end())
      out.push_back(c);
  return out;
}

/// Columns copied from src: of runs (but id), and of each per-run table (but run_id).
struct MergeColumns {
  std::vector<std::string> runs;
  std::map<std::string, std::vector<std::string>> rows;
};

/// Merges src's run `src_id` (cell `key`) into main: added, replacing an unfinished run, or left
/// out when main holds a result already.
void merge_run(Database& db, int64_t src_id, const std::string& key, const MergeColumns& cols, MergeStats& st) {
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
    if (is_done(dst_status) || !is_done(src_status)) {
      ++(is_done(dst_status) && is_done(src_status) ? st.identical : st.kept);
      return;
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
    Statement ins(db, ("INSERT INTO main.runs (" + join(cols.runs) + ") SELECT " + join(cols.runs) +
                       " FROM src.runs WHERE id = ?1")
                          .c_str());
    ins.bind(1, src_id);
    ins.run();
  }
  const int64_t new_id = db.last_insert_rowid();
  for (const char* t : {"layers", "steps", "evals", "metrics", "alpha_layers"}) {
    const auto& rest = cols.rows.at(t);
    Statement ins(db, ("INSERT INTO main." + std::string(t) + " (run_id, " + join(rest) + ") SELECT ?1, " + join(rest) +
                       " FROM src." + t + " WHERE run_id = ?2")
                          .c_str());
    ins.bind(1, new_id);
    ins.bind(2, src_id);
    ins.run();
  }
}

MergeStats merge_one(Database& db, const Input& in) {
  MergeStats st;
  {
    Statement a(db, "ATTACH DATABASE ?1 AS src");
    a.bind(1, in.store->database().uri());
    a.run();
  }
  try {
    MergeColumns cols;
    cols.runs = shared_columns(db, "runs", {"id"});
    for (const char* t : {"layers", "steps", "evals", "metrics", "alpha_layers"})
      cols.rows[t] = shared_columns(db, t, {"run_id"});
    Transaction tx(db);
    std::vector<std::pair<int64_t, std::string>> src_runs;  // (id, cell key)
    {
      Statement q(db, "SELECT id, cell_key FROM src.runs ORDER BY id");
      while (q.step()) src_runs.push_back({q.get_int(0), q.get_text(1)});
    }
    for (const auto& [src_id, key] : src_runs) merge_run(db, src_id, key, cols, st);
    tx.commit();
  } catch (...) {
    db.exec("DETACH DATABASE src");
    throw;
  }
  db.exec("DETACH DATABASE src");
  return st;
}

}  // namespace

std::vector<MergeStats> merge_databases(Store& out, const std::vector<std::string>& inputs) {
  // Every input is opened and checked before anything is written.
  auto opened = open_inputs(inputs, out.path());
  std::vector<std::pair<std::string, std::vector<RunRecord>>> sources{{out.path(), out.runs()}};
  for (const auto& in : opened) sources.push_back({in.path, in.store->runs()});
  check_conflicts(sources);
  std::vector<MergeStats> stats;
  for (const auto& in : opened) stats.push_back(merge_one(out.database(), in));
  return stats;
}

std::vector<MergeStats> merge_into(const std::string& out_path, const std::vector<std::string>& inputs) {
  check_database_path(out_path);
  auto opened = open_inputs(inputs, out_path);
  std::error_code ec;
  const bool exists = fs::exists(out_path, ec);
  {
    std::vector<std::pair<std::string, std::vector<RunRecord>>> sources;
    if (exists && fs::file_size(out_path, ec) > 0) {
      Store current(out_path, Store::Mode::kReadOnly);  // a foreign output is refused here, unchanged
      sources.push_back({out_path, current.runs()});
    }
    for (const auto& in : opened) sources.push_back({in.path, in.store->runs()});
    check_conflicts(sources);
  }
  std::vector<MergeStats> stats;
  if (exists) {
    Store out(out_path);
    for (const auto& in : opened) stats.push_back(merge_one(out.database(), in));
    return stats;
  }
  // A new output: built beside its final name, renamed into place once complete and closed
  // (closing the last connection folds the WAL into the file and removes -wal and -shm).
  const std::string tmp = out_path + ".tmp-" + std::to_string(::getpid());
  auto remove_tmp = [&] {
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) fs::remove(tmp + suffix, ec);
  };
  remove_tmp();
  try {
    {
      Store out(tmp);
      for (const auto& in : opened) stats.push_back(merge_one(out.database(), in));
    }
    fs::rename(tmp, out_path);
  } catch (...) {
    remove_tmp();
    throw;
  }
  return stats;
}

}  // namespace htga::storage

namespace htga::storage {

void publish_copy(const std::string& from, const std::string& to) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_regular_file(from, ec)) throw OpenError(from + ": no database to publish");
  fs::create_directories(fs::path(to).parent_path(), ec);
  if (ec) throw OpenError(to + ": cannot create its folder: " + ec.message());
  const std::string tmp = to + ".tmp-" + std::to_string(::getpid());
  fs::remove(tmp, ec);
  try {
    Database source(from, Database::Access::kReadOnly);
    Database dest(tmp, Database::Access::kReadWrite);
    sqlite3_backup* b = sqlite3_backup_init(dest.handle(), "main", source.handle(), "main");
    if (!b) dest.check(sqlite3_errcode(dest.handle()), "publish");
    const int rc = sqlite3_backup_step(b, -1);
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE) dest.check(rc, "publish");
    dest.exec("PRAGMA journal_mode=DELETE");  // one self-contained file
  } catch (const Error& e) {
    fs::remove(tmp, ec);
    throw OpenError(to + ": cannot publish " + from + ": " + e.what());
  }
  fs::rename(tmp, to, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw OpenError(to + ": cannot publish " + from + ": " + ec.message());
  }
}

}  // namespace htga::storage

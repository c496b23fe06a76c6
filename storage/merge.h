#pragma once
// Combining shard databases: `htga merge OUT IN...`.

#include <cstdint>
#include <string>
#include <vector>

#include "storage/store.h"

namespace htga::storage {

struct MergeStats {
  int64_t added = 0;      // cells new to the output
  int64_t replaced = 0;   // the output's unfinished run replaced by a finished one
  int64_t identical = 0;  // the same result already there
  int64_t kept = 0;       // the output's run kept (the input's did not finish)
};

/// Copies the runs of each input database (with their steps, evaluations, metrics and per-layer
/// rows) into `out`, deduplicated by cell key: a finished or diverged run wins over one that did
/// not finish; two results for one cell must agree (status, steps, test metric), else nothing is
/// written and OpenError names the cell and both files. Inputs are opened read-only
/// (Store::Mode::kReadOnly) and never change: an older one is read through a migrated temporary
/// copy, a foreign one is refused. An input that is `out` itself is refused.
std::vector<MergeStats> merge_databases(Store& out, const std::vector<std::string>& inputs);

/// `htga merge`: checks every path, opens and checks every input, and checks for conflicts with
/// `out_path` (read-only, when it exists) before anything is written. A new output is built
/// under a temporary name beside it and renamed into place when complete, so that a refused or
/// failed merge leaves no output file behind; an existing one gets one transaction per input.
std::vector<MergeStats> merge_into(const std::string& out_path, const std::vector<std::string>& inputs);

/// Copies the database at `from` to `to` as one consistent snapshot (SQLite's backup API, so a
/// WAL or a writer does not matter), written beside `to` and renamed over it: a reader of `to`
/// sees the old copy or the new one, never half of one. For job arrays whose database lives on
/// a node's local disk (`htga run grid --publish`). Throws OpenError naming the path.
void publish_copy(const std::string& from, const std::string& to);

}  // namespace htga::storage

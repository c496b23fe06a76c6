#pragma once
// Grid files: parse, validate against the registries, expand into cells.
//
// A grid names lists of datasets, models and optimizers, training defaults and seeds; every
// hyper-parameter given as a list (a list of lists for list-valued ones such as `hidden`)
// expands as a cartesian product. Each cell's config is canonical: every parameter present,
// defaults filled in, numbers normalised, so that its key (a hash of the config) is stable.

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "experiments/config.h"  // cell_key, without_defaults

namespace htga::experiments {

struct Cell {
  /// {"dataset": {"name": ...}, "model": {...}, "optimizer": {...}, "train": {...}, "seed": n}
  nlohmann::json config;
  /// 16 hex digits: cell_key(config) (experiments/config.h).
  std::string key;
  /// Short human label: names plus the parameters that vary across the grid.
  std::string label;
};

struct Grid {
  std::string name;
  std::string source;  // file the grid came from (for messages)
  std::vector<Cell> cells;
};

struct GridOptions {
  bool check_data = true;  // check that every dataset's files exist (not read)
};

/// Parses and expands a grid document. Throws InputError naming `source`, the JSON pointer
/// and the problem.
Grid parse_grid(const nlohmann::json& doc, const std::string& source, const GridOptions& options = {});
/// Reads `path` and parses it.
Grid load_grid(const std::string& path, const GridOptions& options = {});

}  // namespace htga::experiments

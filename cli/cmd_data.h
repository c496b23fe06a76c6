#pragma once
// `htga data fetch|list|verify`: the public datasets, downloaded and checked. Torch-free (this
// header does not include cli/commands.h, which pulls in LibTorch through the runner).

#include <iosfwd>
#include <string>
#include <vector>

#include "experiments/fetch/fetch.h"

namespace CLI {
class App;
}

namespace htga::cli {

struct DataFetchOptions {
  std::vector<std::string> names;  // datasets of fetch::datasets()
  fetch::FetchOptions fetch;       // root, mirror, force, progress, ...
};

/// `htga data fetch NAME...`: what happens on `err`, one line per dataset on `out` (its folder
/// and the grid path that reads it). Returns 0; throws InputError or FetchError.
int run_data_fetch(const DataFetchOptions& options, std::ostream& out, std::ostream& err);

/// `htga data list`: each dataset, present/complete under `root`, its size and its source.
int run_data_list(const std::string& root, std::ostream& out);

/// `htga data verify NAME...`: returns 0 when every file checks, 1 otherwise.
int run_data_verify(const std::vector<std::string>& names, const std::string& root, std::ostream& out);

/// Adds `htga data` to `app`; its callbacks store their exit status in `exit_code`.
void setup_data(CLI::App& app, int& exit_code);

}  // namespace htga::cli

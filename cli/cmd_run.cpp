#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/commands.h"

namespace htga::cli {

int run_run(const experiments::RunOptions& options, std::ostream& progress) {
  auto s = experiments::run_grid(options, progress);
  if (options.dry_run) {
    progress << fmt::format("{} cells, {} already done, {} to run", s.cells, s.skipped, s.cells - s.skipped)
             << std::endl;
    return 0;
  }
  if (!options.quiet)
    progress << fmt::format("done: {} cells: {} trained, {} skipped (done before), {} diverged, {} failed; db {}",
                            s.cells, s.finished, s.skipped, s.diverged, s.failed, options.db_path)
             << std::endl;
  return s.failed > 0 ? 1 : 0;
}

void setup_run(CLI::App& app, int& exit_code) {
  auto* run = app.add_subcommand("run", "Run experiments");
  run->require_subcommand(1);
  auto opts = std::make_shared<experiments::RunOptions>();
  auto* grid = run->add_subcommand("grid", "Run every cell of a grid file not yet finished in the database");
  grid->add_option("file", opts->grid_path, "Grid JSON file (see experiments/grids/)")->required();
  grid->add_option("--db", opts->db_path, "Result database")->capture_default_str();
  grid->add_flag("--dry-run", opts->dry_run, "List the cells and whether they are done; train nothing");
  grid->add_option("--device", opts->device, "Override the grid's device: auto, cpu, cuda, cuda:N");
  grid->add_flag("-q,--quiet", opts->quiet, "No progress lines");
  grid->callback([opts, &exit_code]() { exit_code = run_run(*opts, std::cerr); });
}

}  // namespace htga::cli

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/commands.h"
#include "storage/merge.h"
#include "storage/paths.h"

namespace htga::cli {

int run_merge(const std::string& out_path, const std::vector<std::string>& inputs, std::ostream& out) {
  // Every path, input and conflict is checked before OUT is created or changed; inputs are only
  // read.
  auto stats = storage::merge_into(storage::resolve_output(out_path), inputs);
  for (size_t i = 0; i < inputs.size(); ++i)
    out << fmt::format("{}: {} added, {} replaced an unfinished run, {} already there, {} kept the output's run",
                       inputs[i], stats[i].added, stats[i].replaced, stats[i].identical, stats[i].kept)
        << std::endl;
  return 0;
}

void setup_merge(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "merge",
      "Combine databases (e.g. of --shard runs) into OUT: runs deduplicated by cell key, a finished run wins "
      "over an unfinished one, conflicting results are refused with nothing written");
  auto out = std::make_shared<std::string>();
  auto inputs = std::make_shared<std::vector<std::string>>();
  cmd->add_option("out", *out, "Output database (created if missing)")->required();
  cmd->add_option("inputs", *inputs, "Databases to merge into it (read only, never changed)")->required();
  cmd->callback([out, inputs, &exit_code] { exit_code = run_merge(*out, *inputs, std::cout); });
}

}  // namespace htga::cli

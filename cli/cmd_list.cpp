#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/commands.h"
#include "experiments/registry.h"

namespace htga::cli {

void run_list(std::ostream& out) {
  using namespace experiments;
  const std::pair<const char*, const Registry*> sections[] = {{"datasets", &datasets()},
                                                              {"models", &models()},
                                                              {"optimizers", &optimizers()},
                                                              {"estimators", &estimators()},
                                                              {"defaults (training settings)", &train_settings()}};
  for (const auto& [title, reg] : sections) {
    out << title << ":\n";
    for (const Entry& e : reg->entries) {
      out << fmt::format("  {:<14} {}\n", e.name, e.help);
      for (const ParamSpec& p : e.params)
        out << fmt::format("      {:<13} {:<18} {} ({})\n", p.name,
                           p.default_value.is_null() ? "null" : p.default_value.dump(), p.help, describe(p.type));
    }
    out << "\n";
  }
}

void setup_list(CLI::App& app, int& exit_code) {
  auto* list = app.add_subcommand("list", "List datasets, models, optimizers, estimators and their parameters");
  list->callback([&exit_code]() {
    run_list(std::cout);
    exit_code = 0;
  });
}

}  // namespace htga::cli

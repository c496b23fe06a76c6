#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/options.h"
#include "experiments/models/zoo.h"
#include "experiments/registry.h"

namespace htga::cli {

namespace {

struct ListOptions {
  std::string section;                                    // "" = all, or datasets, models, ...
  std::vector<std::string> inputs{"1x28x28", "3x32x32"};  // input shapes of the parameter counts
  int64_t classes = 10;                                   // classes of the parameter counts
};

/// "272474" -> "272,474".
std::string grouped(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

void list(const ListOptions& options, std::ostream& out) {
  using experiments::Entry;
  using experiments::ParamSpec;
  using experiments::Registry;
  namespace zoo = htga::models;
  const std::pair<const char*, const Registry*> sections[] = {{"datasets", &experiments::datasets()},
                                                              {"models", &experiments::models()},
                                                              {"optimizers", &experiments::optimizers()},
                                                              {"estimators", &experiments::estimators()},
                                                              {"defaults", &experiments::train_settings()}};
  std::vector<zoo::InputShape> shapes;
  for (const std::string& s : options.inputs) shapes.push_back(zoo::parse_input_shape(s, options.classes, "--input"));
  for (const auto& [title, reg] : sections) {
    if (!options.section.empty() && options.section != title) continue;
    out << title << (std::string(title) == "defaults" ? " (training settings):\n" : ":\n");
    size_t width = 14;  // the names' column: as wide as the longest name (resnet18-imagenet)
    for (const Entry& e : reg->entries) width = std::max(width, e.name.size());
    for (const Entry& e : reg->entries) {
      out << fmt::format("  {:<{}} {}\n", e.name, width, e.help);
      for (const ParamSpec& p : e.params)
        out << fmt::format("      {:<15} {:<18} {}{} ({})\n", p.name,
                           p.default_value.is_null() ? "null" : p.default_value.dump(), p.help,
                           p.in_key ? "" : "; not part of a cell's key", experiments::describe(p.type));
      if (reg != &experiments::models()) continue;
      if (e.name.rfind("transformer", 0) == 0) {  // sized by the dataset's vocabulary, not an image shape
        out << fmt::format("      {:<15} depend on the dataset's vocabulary and max_len\n", "parameters");
        continue;
      }
      // Parameter counts of the default configuration, by building it.
      std::string counts;
      for (const auto& s : shapes) {
        std::string n;
        try {
          n = grouped(zoo::parameter_count(nlohmann::json{{"name", e.name}}, s));
        } catch (const std::exception& ex) {
          n = std::string("does not fit (") + ex.what() + ")";
        }
        counts += fmt::format("{}{}x{}x{}: {}", counts.empty() ? "" : "; ", s.channels, s.height, s.width, n);
      }
      out << fmt::format("      {:<15} {} ({} classes)\n", "parameters", counts, options.classes);
    }
    out << "\n";
  }
}

}  // namespace

void run_list(std::ostream& out) { list(ListOptions{}, out); }

void setup_list(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<ListOptions>();
  auto* cmd = app.add_subcommand("list", "List datasets, models, optimizers, estimators and their parameters");
  cmd->add_option("section", opts->section, "Only this section")
      ->check(CLI::IsMember({"datasets", "models", "optimizers", "estimators", "defaults"}));
  cmd->add_option("--input", opts->inputs, "Input shapes CxHxW for the models' parameter counts")
      ->capture_default_str();
  cmd->add_option("--classes", opts->classes, "Number of classes for the models' parameter counts")
      ->capture_default_str()
      ->check(integer_in(1, 1 << 20));
  cmd->callback([opts, &exit_code]() {
    list(*opts, std::cout);
    exit_code = 0;
  });
}

}  // namespace htga::cli

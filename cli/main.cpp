// htga: Heavy-Tail Gradient Amplification experiments. main() only wires the subcommands and
// turns exceptions into one line on stderr and an exit code (2 bad input, 1 failure).

#include <CLI/CLI.hpp>
#include <iostream>
#include <stdexcept>

#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"htga: train grids of experiments, measure the tail index of gradient noise, compare optimizers"};
  app.set_version_flag("--version", HTGA_VERSION);
  app.require_subcommand(1);
  int exit_code = 0;
  htga::cli::setup_run(app, exit_code);
  htga::cli::setup_report(app, exit_code);
  htga::cli::setup_export(app, exit_code);
  htga::cli::setup_list(app, exit_code);
  htga::cli::setup_estimate(app, exit_code);
  htga::cli::setup_merge(app, exit_code);
  htga::cli::setup_runs(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  } catch (const std::invalid_argument& e) {
    std::cerr << "htga: error: " << e.what() << std::endl;
    return 2;
  } catch (const std::exception& e) {
    std::string msg = e.what();
    std::cerr << "htga: error: " << msg.substr(0, msg.find('\n')) << std::endl;
    return 1;
  }
  return exit_code;
}

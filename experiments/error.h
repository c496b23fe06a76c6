#pragma once
#include <stdexcept>
#include <string>

namespace htga {

/// Bad input from the user (a grid, a name, a data file, a path): main() prints the message on
/// one line and exits with code 2. The message names the file and the problem.
class InputError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// The work was stopped by a signal (SIGINT, SIGTERM) before it was done: main() exits with 130.
/// Thrown where a long command checks experiments::stop_requested(); what it was writing is
/// removed on the way out (temporary files are RAII).
class Interrupted : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace htga

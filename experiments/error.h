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

}  // namespace htga

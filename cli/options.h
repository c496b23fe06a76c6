#pragma once
// Checks shared by the subcommands' options. CLI11 converts an integer that does not fit its
// type to the nearest value it can hold; these validators see the text first and refuse it.

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace htga::cli {

/// An integer written in decimal, from `lo` to `hi`; the message gives the range.
inline CLI::Validator integer_in(int64_t lo, int64_t hi) {
  return CLI::Validator(
      [lo, hi](std::string& text) -> std::string {
        errno = 0;
        char* end = nullptr;
        const long long v = std::strtoll(text.c_str(), &end, 10);
        if (text.empty() || *end != '\0') return "\"" + text + "\" is not an integer";
        if (errno == ERANGE || v < lo || v > hi)
          return text + " is out of range; want " + std::to_string(lo) + " to " + std::to_string(hi);
        return {};
      },
      "INT in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

/// A path that is not empty ("" would silently mean the default one).
inline CLI::Validator non_empty_path() {
  return CLI::Validator([](std::string& text) -> std::string { return text.empty() ? "an empty path" : ""; }, "PATH");
}

/// A finite number above 0 (seconds, rates); the message does not print DBL_MAX in full.
inline CLI::Validator positive_number() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        errno = 0;
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        if (text.empty() || *end != '\0') return "\"" + text + "\" is not a number";
        if (errno == ERANGE || !(v > 0) || !(v < 1e300)) return text + " is out of range; want a number above 0";
        return {};
      },
      "NUMBER > 0");
}

}  // namespace htga::cli

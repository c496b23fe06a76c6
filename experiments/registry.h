#pragma once
// Every choice a grid can make is a name in a registry, with its parameters, their types,
// defaults and ranges. `htga list` prints these tables; the grid parser validates against them.

#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace htga::experiments {

enum class ParamType {
  kNumber,        // a JSON number
  kInteger,       // a JSON integer
  kString,        // a JSON string (choices, when given, are the valid values)
  kIntList,       // a non-empty list of positive integers, e.g. hidden sizes
  kNumberOrNull,  // a number, or null for "derived from other settings"
  kBool,          // true or false
};

struct ParamSpec {
  std::string name;
  ParamType type;
  nlohmann::json default_value;  // null = required when the type is not kNumberOrNull
  std::string help;
  double min = -std::numeric_limits<double>::infinity();  // smallest valid value
  bool min_exclusive = false;                             // value must be > min
  std::vector<std::string> choices;                       // for kString
  double max = std::numeric_limits<double>::infinity();   // largest valid value
  bool max_exclusive = false;                             // value must be < max
  /// Whether the value enters a cell's key (experiments/config.h). False for the settings that
  /// say how a cell runs, not what it computes (the device, checkpointing): changing them must
  /// not make a finished cell run again.
  bool in_key = true;
};

struct Entry {
  std::string name;
  std::string help;
  std::vector<ParamSpec> params;
  const ParamSpec* find(const std::string& param) const;
};

/// A registry: one kind of choice (datasets, models, optimizers, estimators, training settings).
struct Registry {
  std::string kind;  // "dataset", "model", ...
  std::vector<Entry> entries;
  const Entry* find(const std::string& name) const;
  /// "a, b, c": the valid names, for error messages.
  std::string names() const;
};

const Registry& datasets();
const Registry& models();
const Registry& optimizers();
const Registry& estimators();
/// Training settings a grid's "defaults" may hold (one entry, named "train").
const Registry& train_settings();

/// Short description of a type for messages and help ("a number", "a list of integers").
std::string describe(ParamType type);

}  // namespace htga::experiments

#pragma once
// A cell's config, {"dataset": {...}, "model": {...}, "optimizer": {...}, "train": {...},
// "seed": n}, read against the registries: its key, the settings a person wrote, its settings
// flattened into columns. Registries and JSON only, no LibTorch: the analysis reads configs
// back from a database with this, and builds without LibTorch.

#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "experiments/registry.h"

namespace htga::experiments {

/// The registry entry a part of a config follows: "train" the training settings, "dataset",
/// "model" and "optimizer" the entry of the part's "name". nullptr for another part or an
/// unknown name.
const Entry* entry_of(const nlohmann::json& config, const std::string& part);

/// Whether `part`.`param` of a config enters its cell key (ParamSpec::in_key). A parameter the
/// registry does not know does: it is kept as stored.
bool in_key(const nlohmann::json& config, const std::string& part, const std::string& param);

/// A config without the settings that are not part of a cell's key (ParamSpec::in_key false:
/// train.device, train.checkpoint_every, ...): how a cell runs, not what it computes.
nlohmann::json without_unkeyed(const nlohmann::json& config);

/// A cell config without the parameters that are at their registry defaults (what a person
/// would have to write to get this cell).
nlohmann::json without_defaults(const nlohmann::json& config);

/// Stable key of a cell config, 16 hex digits: FNV-1a of the canonical JSON without the
/// settings outside the key and without parameters at their registry defaults. Databases hold
/// these keys: whatever changes here must leave the key of every existing config as it was.
std::string cell_key(const nlohmann::json& config);

/// 16 hex digits: FNV-1a 64 of `text` (Fowler, Noll, Vo), prime 1099511628211, offset basis
/// 1469598103934665603: the standard basis, 14695981039346656037, without its last digit. So the
/// published test vectors do not apply; the basis does not matter to how well it hashes, and
/// this one stays because the cell keys in every database (and the dataset cache names of
/// data::fnv1a_hex) were made with it.
std::string fnv1a_hex(const std::string& text);

/// Flattens a JSON object into "a.b" -> text: strings as they are, null as "", numbers and
/// lists as JSON.
void flatten_json(const nlohmann::json& j, const std::string& prefix, std::map<std::string, std::string>& out);

}  // namespace htga::experiments

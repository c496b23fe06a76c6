#include "experiments/config.h"

#include <cstdint>
#include <cstdio>

namespace htga::experiments {

using nlohmann::json;

namespace {

/// The parts of a config that follow a registry.
constexpr const char* kParts[] = {"dataset", "model", "optimizer", "train"};

}  // namespace

const Entry* entry_of(const json& config, const std::string& part) {
  if (!config.contains(part) || !config[part].is_object()) return nullptr;
  if (part == "train") return &train_settings().entries.front();
  const Registry* reg = part == "dataset"     ? &datasets()
                        : part == "model"     ? &models()
                        : part == "optimizer" ? &optimizers()
                                              : nullptr;
  return reg ? reg->find(config[part].value("name", std::string())) : nullptr;
}

bool in_key(const json& config, const std::string& part, const std::string& param) {
  const Entry* entry = entry_of(config, part);
  const ParamSpec* spec = entry ? entry->find(param) : nullptr;
  return !spec || spec->in_key;
}

json without_unkeyed(const json& config) {
  json c = config;
  for (const char* part : kParts) {
    const Entry* entry = entry_of(c, part);
    if (!entry) continue;
    for (const ParamSpec& p : entry->params)
      if (!p.in_key) c[part].erase(p.name);
  }
  return c;
}

json without_defaults(const json& config) {
  json c = config;
  for (const char* part : kParts) {
    const Entry* entry = entry_of(c, part);
    if (!entry) continue;
    for (const ParamSpec& p : entry->params)
      if (c[part].contains(p.name) && c[part][p.name] == p.default_value) c[part].erase(p.name);
  }
  return c;
}

std::string cell_key(const json& config) {
  // Parameters at their registry default are left out, so that a parameter added in a later
  // version (with a default that keeps the old behaviour) does not change the keys of the
  // cells already in a database.
  const json c = without_unkeyed(without_defaults(config));
  return fnv1a_hex(c.dump());  // object keys are sorted: the dump is canonical
}

std::string fnv1a_hex(const std::string& text) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char ch : text) {
    h ^= ch;
    h *= 1099511628211ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

void flatten_json(const json& j, const std::string& prefix, std::map<std::string, std::string>& out) {
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) flatten_json(v, prefix.empty() ? k : prefix + "." + k, out);
  } else if (j.is_string()) {
    out[prefix] = j.get<std::string>();
  } else if (j.is_null()) {
    out[prefix] = "";
  } else {
    out[prefix] = j.dump();
  }
}

}  // namespace htga::experiments

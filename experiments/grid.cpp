#include "experiments/grid.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>

#include "experiments/data/dataset.h"
#include "experiments/error.h"
#include "experiments/registry.h"

namespace htga::experiments {

using nlohmann::json;

namespace {

std::string json_type(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_string()) return "\"" + v.get<std::string>() + "\"";
  if (v.is_array()) return "a list";
  if (v.is_object()) return "an object";
  return v.dump();
}

std::string fmt_bound(double x) {
  std::ostringstream s;
  s << std::setprecision(15) << x;  // 1048576, not 1.04858e+06; 1e+300 stays short
  return s.str();
}

/// An integer JSON value that does not fit int64 (2^63 and above parse as unsigned).
bool beyond_int64(const json& v) {
  return v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX);
}

class Parser {
 public:
  Parser(std::string source, GridOptions options) : source_(std::move(source)), options_(options) {}

  [[noreturn]] void fail(const std::string& pointer, const std::string& what) const {
    throw InputError(source_ + ": " + (pointer.empty() ? "/" : pointer) + ": " + what);
  }

  /// Checks one value against its spec; returns it normalised (numbers as doubles).
  json check_value(const ParamSpec& spec, const json& v, const std::string& ptr) const {
    auto expect = [&]() { fail(ptr, "expected " + describe(spec.type) + ", got " + json_type(v)); };
    auto check_range = [&](double x) {
      bool low = spec.min_exclusive ? x <= spec.min : x < spec.min;
      bool high = spec.max_exclusive ? x >= spec.max : x > spec.max;
      if (low)
        fail(ptr,
             "must be " + std::string(spec.min_exclusive ? "> " : ">= ") + fmt_bound(spec.min) + ", got " + v.dump());
      if (high)
        fail(ptr,
             "must be " + std::string(spec.max_exclusive ? "< " : "<= ") + fmt_bound(spec.max) + ", got " + v.dump());
    };
    switch (spec.type) {
      case ParamType::kNumberOrNull:
        if (v.is_null()) return v;
        [[fallthrough]];
      case ParamType::kNumber:
        if (!v.is_number()) expect();
        check_range(v.get<double>());
        return json(v.get<double>());
      case ParamType::kInteger:
        if (!v.is_number_integer()) expect();
        if (beyond_int64(v)) fail(ptr, "must be <= " + std::to_string(INT64_MAX) + ", got " + v.dump());
        check_range(static_cast<double>(v.get<int64_t>()));
        return json(v.get<int64_t>());
      case ParamType::kString: {
        if (!v.is_string()) expect();
        const auto s = v.get<std::string>();
        if (!spec.choices.empty()) {
          bool ok = false;
          std::string valid;
          for (const auto& c : spec.choices) {
            ok = ok || c == s;
            valid += (valid.empty() ? "" : ", ") + c;
          }
          if (!ok) fail(ptr, "unknown value \"" + s + "\"; valid: " + valid);
        }
        return v;
      }
      case ParamType::kBool:
        if (!v.is_boolean()) expect();
        return v;
      case ParamType::kIntList: {
        if (!v.is_array() || v.empty()) expect();
        json out = json::array();
        for (size_t i = 0; i < v.size(); ++i) {
          if (!v[i].is_number_integer() || beyond_int64(v[i]) || v[i].get<int64_t>() <= 0)
            fail(ptr + "/" + std::to_string(i), "expected a positive integer, got " + json_type(v[i]));
          if (static_cast<double>(v[i].get<int64_t>()) > spec.max)
            fail(ptr + "/" + std::to_string(i), "must be <= " + fmt_bound(spec.max) + ", got " + v[i].dump());
          out.push_back(v[i].get<int64_t>());
        }
        return out;
      }
    }
    fail(ptr, "unsupported parameter type");
  }

  /// The alternatives of one parameter: a list expands, except for list-valued parameters,
  /// where only a list of lists does.
  std::vector<json> alternatives(const ParamSpec& spec, const json& v, const std::string& ptr) const {
    bool expands = v.is_array() && (spec.type != ParamType::kIntList || (!v.empty() && v[0].is_array()));
    if (!expands) return {check_value(spec, v, ptr)};
    if (v.empty()) fail(ptr, "empty list: give at least one value");
    std::vector<json> out;
    for (size_t i = 0; i < v.size(); ++i) out.push_back(check_value(spec, v[i], ptr + "/" + std::to_string(i)));
    return out;
  }

  /// Expands one entry object ({"name": ..., params...}) of a registry into canonical configs.
  std::vector<json> expand_entry(const Registry& reg, const json& obj, const std::string& ptr, bool named) const {
    if (!obj.is_object()) fail(ptr, "expected an object, got " + json_type(obj));
    const Entry* entry = &reg.entries.front();
    if (named) {
      if (!obj.contains("name")) fail(ptr, "missing \"name\"; valid " + reg.kind + "s: " + reg.names());
      const json& n = obj["name"];
      if (!n.is_string()) fail(ptr + "/name", "expected a string, got " + json_type(n));
      entry = reg.find(n.get<std::string>());
      if (!entry)
        fail(ptr + "/name", "unknown " + reg.kind + " \"" + n.get<std::string>() + "\"; valid: " + reg.names());
    }
    for (const auto& [k, v] : obj.items()) {
      if (named && k == "name") continue;
      if (!entry->find(k)) {
        std::string valid;
        for (const auto& p : entry->params) valid += (valid.empty() ? "" : ", ") + p.name;
        fail(ptr + "/" + k, "unknown parameter of " + reg.kind + " \"" + entry->name +
                                "\"; valid: " + (valid.empty() ? "(none)" : valid));
      }
    }
    std::vector<json> configs{named ? json{{"name", entry->name}} : json::object()};
    for (const ParamSpec& spec : entry->params) {
      std::vector<json> alts;
      if (obj.contains(spec.name)) {
        alts = alternatives(spec, obj[spec.name], ptr + "/" + spec.name);
      } else {
        if (spec.default_value.is_null() && spec.type != ParamType::kNumberOrNull)
          fail(ptr, "missing required parameter \"" + spec.name + "\"");
        alts = {spec.default_value.is_null() ? json(nullptr)
                                             : check_value(spec, spec.default_value, ptr + "/" + spec.name)};
      }
      std::vector<json> next;
      for (const json& c : configs)
        for (const json& a : alts) {
          json n = c;
          n[spec.name] = a;
          next.push_back(std::move(n));
        }
      configs = std::move(next);
    }
    return configs;
  }

  /// `origins`, when given, receives the JSON pointer of the entry each config came from.
  std::vector<json> expand_list(const Registry& reg, const json& doc, const char* field,
                                std::vector<std::string>* origins = nullptr) const {
    std::string ptr = std::string("/") + field;
    if (!doc.contains(field)) fail("", std::string("missing \"") + field + "\": a list of " + reg.kind + "s");
    const json& list = doc[field];
    if (!list.is_array() || list.empty())
      fail(ptr, "expected a non-empty list of " + reg.kind + "s, got " + json_type(list));
    std::vector<json> out;
    for (size_t i = 0; i < list.size(); ++i) {
      auto e = expand_entry(reg, list[i], ptr + "/" + std::to_string(i), true);
      out.insert(out.end(), e.begin(), e.end());
      if (origins) origins->insert(origins->end(), e.size(), ptr + "/" + std::to_string(i));
    }
    return out;
  }

  Grid parse(const json& doc) {
    if (!doc.is_object()) fail("", "a grid is a JSON object, got " + json_type(doc));
    static const std::set<std::string> kTop{"name", "defaults", "datasets", "models", "optimizers", "seeds"};
    for (const auto& [k, v] : doc.items())
      if (!kTop.count(k)) fail("/" + k, "unknown key; valid: name, defaults, datasets, models, optimizers, seeds");

    Grid grid;
    grid.source = source_;
    if (!doc.contains("name") || !doc["name"].is_string() || doc["name"].get<std::string>().empty())
      fail("/name", "expected the grid's name, a non-empty string");
    grid.name = doc["name"].get<std::string>();

    std::vector<std::string> dataset_origins;
    auto datasets_ = expand_list(datasets(), doc, "datasets", &dataset_origins);
    auto models_ = expand_list(models(), doc, "models");
    auto optimizers_ = expand_list(optimizers(), doc, "optimizers");
    auto trains = expand_entry(train_settings(), doc.value("defaults", json::object()), "/defaults", false);

    std::vector<int64_t> seeds{0};
    if (doc.contains("seeds")) {
      const json& s = doc["seeds"];
      if (!s.is_array() || s.empty()) fail("/seeds", "expected a non-empty list of integers, got " + json_type(s));
      seeds.clear();
      for (size_t i = 0; i < s.size(); ++i) {
        if (!s[i].is_number_integer())
          fail("/seeds/" + std::to_string(i), "expected an integer, got " + json_type(s[i]));
        if (beyond_int64(s[i]))
          fail("/seeds/" + std::to_string(i), "must be <= " + std::to_string(INT64_MAX) + ", got " + s[i].dump());
        seeds.push_back(s[i].get<int64_t>());
      }
    }

    if (options_.check_data) {
      for (size_t i = 0; i < datasets_.size(); ++i) {
        try {
          data::check_available(datasets_[i]);
        } catch (const InputError& e) {
          fail(dataset_origins[i], e.what());
        }
      }
    }

    std::set<std::string> keys;
    for (const json& d : datasets_)
      for (const json& m : models_)
        for (const json& o : optimizers_)
          for (const json& t : trains)
            for (int64_t seed : seeds) {
              Cell c;
              c.config = {{"dataset", d}, {"model", m}, {"optimizer", o}, {"train", t}, {"seed", seed}};
              c.key = cell_key(c.config);
              if (!keys.insert(c.key).second) continue;  // the same experiment listed twice
              grid.cells.push_back(std::move(c));
            }
    // Labels show the parameters whose values differ between cells, however the grid spelled them.
    // Settings outside the key (the device, ...) say how a cell runs, not which one it is.
    std::map<std::string, std::set<std::string>> values;
    for (const Cell& c : grid.cells)
      for (const char* part : {"dataset", "model", "optimizer", "train"})
        for (const auto& [k, v] : c.config[part].items())
          if (in_key(c.config, part, k)) values[std::string(part) + "." + k].insert(v.dump());
    std::set<std::string> varying;
    for (const auto& [k, v] : values)
      if (v.size() > 1) varying.insert(k);
    for (Cell& c : grid.cells) c.label = make_label(c.config, varying);
    return grid;
  }

  static std::string make_label(const json& cfg, const std::set<std::string>& varying) {
    std::string label = cfg["dataset"]["name"].get<std::string>() + "/" + cfg["model"]["name"].get<std::string>() +
                        "/" + cfg["optimizer"]["name"].get<std::string>();
    for (const std::string& v : varying) {
      const auto dot = v.find('.');
      const json& part = cfg[v.substr(0, dot)];
      const std::string param = v.substr(dot + 1);
      if (param != "name" && part.contains(param)) label += " " + param + "=" + part[param].dump();
    }
    return label + " seed=" + std::to_string(cfg["seed"].get<int64_t>());
  }

 private:
  std::string source_;
  GridOptions options_;
};

}  // namespace

Grid parse_grid(const json& doc, const std::string& source, const GridOptions& options) {
  return Parser(source, options).parse(doc);
}

Grid load_grid(const std::string& path, const GridOptions& options) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (std::filesystem::exists(status) && !std::filesystem::is_regular_file(status))
    throw InputError(path + ": not a grid file (a folder, a device or a pipe)");
  std::ifstream in(path);
  if (!in) throw InputError(path + ": cannot read grid file");
  json doc;
  // A key given twice in one object would silently take its last value: refused.
  std::vector<std::set<std::string>> keys;
  std::string duplicate;
  auto on_event = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) keys.emplace_back();
    if (event == json::parse_event_t::object_end && !keys.empty()) keys.pop_back();
    if (event == json::parse_event_t::key && !keys.empty() && !keys.back().insert(parsed.get<std::string>()).second &&
        duplicate.empty())
      duplicate = parsed.get<std::string>();
    return true;
  };
  try {
    doc = json::parse(in, on_event);
  } catch (const json::exception& e) {  // a syntax error, or a number too large for a double (1e400)
    std::string msg = e.what();
    const auto bracket = msg.find("] ");  // "[json.exception.parse_error.101] parse error at ..."
    throw InputError(path + ": not valid JSON: " + (bracket == std::string::npos ? msg : msg.substr(bracket + 2)));
  }
  if (!duplicate.empty()) throw InputError(path + ": key \"" + duplicate + "\" given twice in one object");
  return parse_grid(doc, path, options);
}

}  // namespace htga::experiments

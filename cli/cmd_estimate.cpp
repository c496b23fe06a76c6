// `htga estimate FILE`: tail-index estimates of the values in a text, CSV or NumPy file.

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "estimators/tail.h"
#include "experiments/error.h"

namespace htga::cli {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// A NumPy .npy file of float32 or float64 (format versions 1 to 3), any shape, flattened.
torch::Tensor read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot read");
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0)
    throw InputError(path + ": not a NumPy .npy file (bad magic)");
  const int major = static_cast<unsigned char>(magic[6]);
  uint32_t header_len = 0;
  unsigned char b[4] = {0, 0, 0, 0};
  if (!in.read(reinterpret_cast<char*>(b), major == 1 ? 2 : 4)) throw InputError(path + ": truncated .npy header");
  header_len = b[0] | (b[1] << 8) | (uint32_t(b[2]) << 16) | (uint32_t(b[3]) << 24);
  std::string header(header_len, '\0');
  if (!in.read(header.data(), header_len)) throw InputError(path + ": truncated .npy header");
  auto field = [&](const std::string& key) {
    auto at = header.find("'" + key + "'");
    if (at == std::string::npos) throw InputError(path + ": .npy header has no '" + key + "'");
    return header.substr(header.find(':', at) + 1);
  };
  std::string descr = field("descr");
  descr = descr.substr(descr.find('\'') + 1);
  descr = descr.substr(0, descr.find('\''));
  torch::Dtype dtype;
  if (descr == "<f4" || descr == "=f4")
    dtype = torch::kFloat32;
  else if (descr == "<f8" || descr == "=f8")
    dtype = torch::kFloat64;
  else
    throw InputError(path + ": .npy dtype " + descr + " not supported (float32 or float64, little-endian)");
  std::string shape = field("shape");
  shape = shape.substr(shape.find('(') + 1, shape.find(')') - shape.find('(') - 1);
  int64_t count = 1;
  std::stringstream dims(shape);
  for (std::string d; std::getline(dims, d, ',');) {
    if (d.find_first_not_of(" ") == std::string::npos) continue;
    count *= std::stoll(d);
  }
  const int64_t item = dtype == torch::kFloat32 ? 4 : 8;
  auto values = torch::empty({count}, dtype);
  in.read(static_cast<char*>(values.data_ptr()), count * item);
  if (in.gcount() != count * item)
    throw InputError(path + ": truncated: header announces " + std::to_string(count) + " values, file has " +
                     std::to_string(in.gcount() / item));
  return values;
}

/// Numbers from a text or CSV file: one per line, or column `column` (1-based) of a comma,
/// tab or space separated file. A first line that is not a number is taken as a header.
torch::Tensor read_text(const std::string& path, int column) {
  std::ifstream in(path);
  if (!in) throw InputError(path + ": cannot read");
  std::vector<double> values;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    std::vector<std::string> fields;
    std::string cur;
    for (char c : line) {
      if (c == ',' || c == '\t' || (c == ' ' && line.find_first_of(",\t") == std::string::npos)) {
        if (c != ' ' || !cur.empty()) fields.push_back(cur);
        cur.clear();
      } else {
        cur += c;
      }
    }
    fields.push_back(cur);
    if (column > static_cast<int>(fields.size()))
      throw InputError(fmt::format("{}:{}: no column {} (the line has {})", path, line_no, column, fields.size()));
    std::string text = fields[column - 1];
    text.erase(0, text.find_first_not_of(" \""));
    text.erase(text.find_last_not_of(" \"") + 1);
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0') {
      if (values.empty() && line_no == 1) continue;  // a header
      throw InputError(fmt::format("{}:{}: not a number: \"{}\"", path, line_no, text));
    }
    values.push_back(v);
  }
  return torch::tensor(values, torch::kFloat64);
}

nlohmann::json number_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

}  // namespace

torch::Tensor read_values(const std::string& path, int column) {
  if (column < 1) throw InputError("--column must be 1 or more, got " + std::to_string(column));
  torch::Tensor v = ends_with(path, ".npy") ? read_npy(path) : read_text(path, column);
  if (v.numel() == 0) throw InputError(path + ": no numbers");
  return v;
}

nlohmann::json run_estimate(const EstimateOptions& o) {
  std::vector<std::string> names;
  if (o.estimator == "all") {
    names = estimators::estimator_names();
  } else {
    const auto& valid = estimators::estimator_names();
    if (std::find(valid.begin(), valid.end(), o.estimator) == valid.end())
      throw InputError("--estimator " + o.estimator + ": unknown; valid: hill, pickands, moment, stable, ks, all");
    names = {o.estimator};
  }
  const torch::Tensor x = read_values(o.path, o.column);
  const std::string why = estimators::explain_undefined(x);
  nlohmann::json out = nlohmann::json::object();
  for (const auto& name : names) {
    const auto e = estimators::estimate(name, x, o.k);
    nlohmann::json j;
    j["alpha"] = number_or_null(e.alpha.item<double>());
    j["std_error"] = number_or_null(e.std_error.item<double>());
    j["n"] = e.n;
    if (e.k) j["k"] = e.k;
    if (e.k1) {
      j["k1"] = e.k1;
      j["k2"] = e.k2;
    }
    for (const auto& [key, t] : e.extra)
      j[key] = t.scalar_type() == torch::kInt64 ? nlohmann::json(t.item<int64_t>()) : number_or_null(t.item<double>());
    if (j["alpha"].is_null()) j["reason"] = !e.reason.empty() ? e.reason : !why.empty() ? why : "estimate undefined";
    out[name] = j;
  }
  return out;
}

void print_estimates(const nlohmann::json& results, std::ostream& out) {
  out << fmt::format("{:<9} {:>9} {:>9} {:>9}  {}\n", "estimator", "alpha", "std err", "n", "used");
  for (const auto& [name, j] : results.items()) {
    auto num = [&](const char* key) {
      return j.contains(key) && !j[key].is_null() ? fmt::format("{:.4f}", j[key].get<double>()) : std::string("-");
    };
    std::string used;
    for (const char* key : {"k", "k1", "k2", "xmin", "ks_distance"})
      if (j.contains(key) && !j[key].is_null())
        used += fmt::format("{}{}={}", used.empty() ? "" : " ", key,
                            j[key].is_number_integer() ? std::to_string(j[key].get<int64_t>())
                                                       : fmt::format("{:.4g}", j[key].get<double>()));
    if (j.contains("reason")) used += (used.empty() ? "" : "  ") + ("(" + j["reason"].get<std::string>() + ")");
    out << fmt::format("{:<9} {:>9} {:>9} {:>9}  {}\n", name, num("alpha"), num("std_error"), j["n"].get<int64_t>(),
                       used);
  }
}

void setup_estimate(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<EstimateOptions>();
  auto* est = app.add_subcommand("estimate", "Estimate the tail index alpha of the values in a file");
  est->add_option("file", opts->path, "Text/CSV (one number per line, or --column N) or NumPy .npy (float32/64)")
      ->required();
  est->add_option("--estimator", opts->estimator, "hill, pickands, moment, stable, ks or all")->capture_default_str();
  est->add_option("--k", opts->k, "Order statistics (hill, pickands, moment) or block size (stable); 0 = default")
      ->capture_default_str();
  est->add_option("--column", opts->column, "Column of a CSV file, 1-based")->capture_default_str();
  est->add_flag("--json", opts->json, "One JSON object keyed by estimator name");
  est->callback([opts, &exit_code]() {
    auto results = run_estimate(*opts);
    if (opts->json)
      std::cout << results.dump(1) << std::endl;
    else
      print_estimates(results, std::cout);
    exit_code = 0;
  });
}

}  // namespace htga::cli

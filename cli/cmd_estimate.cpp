// `htga estimate FILE`: tail-index estimates of the values in a text, CSV or NumPy file.

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "cli/options.h"
#include "estimators/tail.h"
#include "experiments/cpus.h"
#include "experiments/error.h"

namespace htga::cli {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// The value of `key` in a .npy header dict ("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }").
std::string npy_field(const std::string& path, const std::string& header, const std::string& key) {
  const auto at = header.find("'" + key + "'");
  if (at == std::string::npos) throw InputError(path + ": .npy header has no '" + key + "'");
  const auto colon = header.find(':', at);
  if (colon == std::string::npos) throw InputError(path + ": .npy header: '" + key + "' has no value");
  return header.substr(colon + 1);
}

/// The number of values a .npy shape "(3, 4)" announces; InputError for anything else.
int64_t npy_count(const std::string& path, const std::string& value) {
  const auto open = value.find_first_not_of(' ');
  const auto close = value.find(')');
  if (open == std::string::npos || value[open] != '(' || close == std::string::npos || close < open)
    throw InputError(path + ": .npy header: shape is not a tuple");
  const std::string shape = value.substr(open + 1, close - open - 1);
  int64_t count = 1;
  std::stringstream dims(shape);
  for (std::string d; std::getline(dims, d, ',');) {
    const auto b = d.find_first_not_of(' '), e = d.find_last_not_of(' ');
    if (b == std::string::npos) continue;  // the trailing comma of "(3,)"
    d = d.substr(b, e - b + 1);
    if (d.empty() || d.size() > 15 || d.find_first_not_of("0123456789") != std::string::npos)
      throw InputError(path + ": .npy header: shape dimension \"" + d + "\" is not a non-negative integer");
    const int64_t n = std::stoll(d);
    if (n != 0 && count > (int64_t{1} << 40) / n) throw InputError(path + ": .npy header: shape too large");
    count *= n;
  }
  return count;
}

/// `text` with bytes outside printable ASCII as \xNN, cut at 40 characters, for messages.
std::string printable(const std::string& text) {
  std::string out;
  for (unsigned char c : text.substr(0, 40))
    out += c >= 32 && c < 127 ? std::string(1, static_cast<char>(c)) : fmt::format("\\x{:02x}", c);
  return text.size() > 40 ? out + "..." : out;
}

/// A NumPy .npy file of float32 or float64 (format versions 1 to 3), any shape, flattened.
torch::Tensor read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot read: " + std::strerror(errno));
  in.seekg(0, std::ios::end);
  const auto file_size = static_cast<int64_t>(in.tellg());
  in.seekg(0);
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0)
    throw InputError(path + ": not a NumPy .npy file (bad magic)");
  const int major = static_cast<unsigned char>(magic[6]);
  if (major < 1 || major > 3)
    throw InputError(path + ": .npy format version " + std::to_string(major) + " not supported");
  unsigned char b[4] = {0, 0, 0, 0};
  if (!in.read(reinterpret_cast<char*>(b), major == 1 ? 2 : 4)) throw InputError(path + ": truncated .npy header");
  const uint32_t header_len = b[0] | (b[1] << 8) | (uint32_t(b[2]) << 16) | (uint32_t(b[3]) << 24);
  if (header_len > file_size) throw InputError(path + ": truncated .npy header");
  std::string header(header_len, '\0');
  if (!in.read(header.data(), header_len)) throw InputError(path + ": truncated .npy header");
  if (header.find('{') == std::string::npos) throw InputError(path + ": .npy header is not a dict");
  std::string descr = npy_field(path, header, "descr");
  const auto q1 = descr.find('\''), q2 = q1 == std::string::npos ? q1 : descr.find('\'', q1 + 1);
  if (q2 == std::string::npos) throw InputError(path + ": .npy header: descr is not a string");
  descr = descr.substr(q1 + 1, q2 - q1 - 1);
  torch::Dtype dtype;
  if (descr == "<f4" || descr == "=f4")
    dtype = torch::kFloat32;
  else if (descr == "<f8" || descr == "=f8")
    dtype = torch::kFloat64;
  else
    throw InputError(path + ": .npy dtype " + descr + " not supported (float32 or float64, little-endian)");
  const int64_t count = npy_count(path, npy_field(path, header, "shape"));
  const int64_t item = dtype == torch::kFloat32 ? 4 : 8;
  const int64_t bytes = file_size - static_cast<int64_t>(in.tellg());
  if (bytes != count * item)
    throw InputError(path + ": " + (bytes < count * item ? "truncated" : "trailing data") + ": header announces " +
                     std::to_string(count) + " values (" + std::to_string(count * item) + " bytes), file has " +
                     std::to_string(bytes) + " bytes after the header");
  auto values = torch::empty({count}, dtype);
  in.read(static_cast<char*>(values.data_ptr()), count * item);
  if (in.gcount() != count * item) throw InputError(path + ": cannot read its values");
  return values;
}

/// Numbers from a text or CSV file: one per line, or column `column` (1-based) of a comma,
/// tab or space separated file. A first line that is not a number is taken as a header.
torch::Tensor read_text(const std::string& path, int column) {
  std::ifstream in(path);
  if (!in) throw InputError(path + ": cannot read: " + std::strerror(errno));
  std::vector<double> values;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line_no == 1 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);  // a UTF-8 byte-order mark
    if (line.find('\0') != std::string::npos ||
        (line_no == 1 && (line.compare(0, 2, "\xFF\xFE") == 0 || line.compare(0, 2, "\xFE\xFF") == 0)))
      throw InputError(
          fmt::format("{}:{}: not a text file of numbers (UTF-16 or binary?); want ASCII or UTF-8, or "
                      "a .npy file",
                      path, line_no));
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
      throw InputError(fmt::format("{}:{}: not a number: \"{}\"", path, line_no, printable(text)));
    }
    values.push_back(v);
  }
  return torch::tensor(values, torch::kFloat64);
}

nlohmann::json number_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

}  // namespace

torch::Tensor read_values(const std::string& path, int column) {
  if (column < 1) throw InputError("--column must be 1 or more, got " + std::to_string(column));
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (std::filesystem::exists(status) && !std::filesystem::is_regular_file(status))
    throw InputError(path + ": not a regular file (a folder, a device or a pipe); want a text, CSV or .npy file");
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
  if (o.k != 0 && (o.k < 1 || o.k > x.numel() - 1))
    throw InputError(
        fmt::format("--k {}: want 1 <= k <= n - 1 = {} ({} values in {})", o.k, x.numel() - 1, x.numel(), o.path));
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
      ->check(integer_in(0, INT64_MAX))
      ->capture_default_str();
  est->add_option("--column", opts->column, "Column of a CSV file, 1-based")
      ->check(integer_in(1, 1 << 20))
      ->capture_default_str();
  est->add_flag("--json", opts->json, "One JSON object keyed by estimator name");
  est->add_option("--threads", opts->threads,
                  "Intra-op threads (default: OMP_NUM_THREADS if set, else every CPU this process may use)")
      ->check(integer_in(1, 4096));
  est->callback([opts, &exit_code]() {
    // Like a grid run: every usable CPU unless told otherwise (LibTorch's own default was one).
    const auto plan =
        experiments::plan_threads(opts->threads, 1, experiments::user_omp_env(), experiments::cpu_budget());
    at::set_num_threads(plan.total);
    auto results = run_estimate(*opts);
    if (opts->json)
      std::cout << results.dump(1) << std::endl;
    else
      print_estimates(results, std::cout);
    exit_code = 0;
  });
}

}  // namespace htga::cli

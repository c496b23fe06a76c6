#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "cli/commands.h"
#include "estimators/tail.h"
#include "experiments/error.h"
#include "samplers.h"
#include "test_util.h"

using htga::InputError;
using htga::cli::EstimateOptions;
using htga::cli::run_estimate;
using htga::test::TempDir;
using htga::test::write_text;

namespace {

/// A .npy file (format 1.0) holding `x` (float32 or float64) with the given shape text.
void write_npy(const std::string& path, const torch::Tensor& x, const std::string& shape, bool truncate = false) {
  const bool f64 = x.scalar_type() == torch::kFloat64;
  std::string header =
      std::string("{'descr': '") + (f64 ? "<f8" : "<f4") + "', 'fortran_order': False, 'shape': (" + shape + "), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  const uint16_t len = static_cast<uint16_t>(header.size());
  out.put(static_cast<char>(len & 0xff)).put(static_cast<char>(len >> 8));
  out << header;
  auto c = x.contiguous();
  auto bytes = c.numel() * c.element_size() - (truncate ? 3 : 0);
  out.write(static_cast<const char*>(c.data_ptr()), bytes);
}

std::string as_lines(const torch::Tensor& x, bool csv) {
  auto c = x.to(torch::kFloat64).contiguous();
  std::string s = csv ? "id,value\n" : "";
  char buf[64];
  for (int64_t i = 0; i < c.numel(); ++i) {
    if (csv)
      std::snprintf(buf, sizeof buf, "%lld,%.17g\n", static_cast<long long>(i), c.data_ptr<double>()[i]);
    else
      std::snprintf(buf, sizeof buf, "%.17g\n", c.data_ptr<double>()[i]);
    s += buf;
  }
  return s;
}

}  // namespace

TEST_CASE("estimate reads text, CSV columns and .npy, and reports every estimator", "[cli]") {
  TempDir dir("estimate");
  auto x = htga::test::pareto(1.5, 40000, 3);
  const double expected = htga::estimators::hill_estimate(x).alpha.item<double>();
  write_text(dir.file("v.txt"), as_lines(x, false));
  write_text(dir.file("v.csv"), as_lines(x, true));
  write_npy(dir.file("v64.npy"), x.reshape({200, 200}), "200, 200");
  write_npy(dir.file("v32.npy"), x.to(torch::kFloat32), "40000,");

  EstimateOptions o;
  o.path = dir.file("v.txt");
  auto all = run_estimate(o);
  for (const char* name : {"hill", "pickands", "moment", "stable", "ks"}) {
    INFO(name);
    REQUIRE(all.contains(name));
    CHECK(all[name]["n"] == 40000);
    CHECK(all[name]["alpha"].is_number());
  }
  CHECK(all["hill"]["alpha"].get<double>() == Approx(expected).epsilon(1e-6));
  CHECK(all["hill"]["k"] == 200);
  CHECK(all["stable"]["k1"] == 200);
  CHECK(all["ks"].contains("xmin"));

  o.estimator = "hill";
  o.path = dir.file("v.csv");
  o.column = 2;
  CHECK(run_estimate(o)["hill"]["alpha"].get<double>() == Approx(expected).epsilon(1e-6));
  o.column = 1;
  o.path = dir.file("v64.npy");
  CHECK(run_estimate(o)["hill"]["alpha"].get<double>() == Approx(expected).epsilon(1e-6));
  o.path = dir.file("v32.npy");
  CHECK(run_estimate(o)["hill"]["alpha"].get<double>() == Approx(expected).epsilon(1e-4));
  o.k = 400;
  auto fixed = run_estimate(o);
  CHECK(fixed.size() == 1);
  CHECK(fixed["hill"]["k"] == 400);
}

TEST_CASE("estimate: undefined estimates are null with a reason", "[cli]") {
  TempDir dir("estimate0");
  write_text(dir.file("zeros.txt"), "0\n0\n0\n0\n0\n0\n0\n0\n0\n0\n");
  EstimateOptions o;
  o.path = dir.file("zeros.txt");
  auto r = run_estimate(o);
  for (const auto& [name, j] : r.items()) {
    INFO(name);
    CHECK(j["alpha"].is_null());
    CHECK(j["reason"].is_string());
  }
  CHECK(r["hill"]["reason"] == "all values are zero");
}

TEST_CASE("estimate: bad files are errors naming the file", "[cli]") {
  TempDir dir("estimatebad");
  EstimateOptions o;
  o.path = dir.file("missing.txt");
  CHECK_THROWS_WITH(run_estimate(o), Catch::StartsWith(dir.file("missing.txt") + ": cannot read"));
  write_text(dir.file("empty.txt"), "\n\n");
  o.path = dir.file("empty.txt");
  CHECK_THROWS_WITH(run_estimate(o), dir.file("empty.txt") + ": no numbers");
  write_text(dir.file("words.txt"), "1.5\n2.5\nthree\n");
  o.path = dir.file("words.txt");
  CHECK_THROWS_WITH(run_estimate(o), dir.file("words.txt") + ":3: not a number: \"three\"");
  write_text(dir.file("two.csv"), "a,b\n1,2\n");
  o.path = dir.file("two.csv");
  o.column = 3;
  CHECK_THROWS_WITH(run_estimate(o), dir.file("two.csv") + ":1: no column 3 (the line has 2)");
  o.column = 1;
  write_npy(dir.file("short.npy"), torch::ones({10}, torch::kFloat64), "10,", /*truncate=*/true);
  o.path = dir.file("short.npy");
  CHECK_THROWS_WITH(
      run_estimate(o),
      dir.file("short.npy") + ": truncated: header announces 10 values (80 bytes), file has 77 bytes after the header");
  o.path = dir.file("two.csv");
  o.estimator = "hil";
  CHECK_THROWS_AS(run_estimate(o), InputError);
}

TEST_CASE("htga estimate --json exits 0, a bad file exits 2", "[e2e]") {
  TempDir dir("estimatecli");
  write_text(dir.file("v.txt"), as_lines(htga::test::pareto(2.0, 10000, 4), false));
  const std::string bin = HTGA_BINARY;
  const std::string json_path = dir.file("out.json");
  int rc = std::system((bin + " estimate " + dir.file("v.txt") + " --json > " + json_path).c_str());
  CHECK(WEXITSTATUS(rc) == 0);
  std::ifstream in(json_path);
  auto j = nlohmann::json::parse(in);
  CHECK(std::abs(j["hill"]["alpha"].get<double>() - 2.0) < 0.3);
  rc = std::system((bin + " estimate " + dir.file("nope.txt") + " 2> /dev/null").c_str());
  CHECK(WEXITSTATUS(rc) == 2);
}

TEST_CASE("htga estimate --threads: the same estimates on one thread and two; 0 is refused", "[e2e]") {
  TempDir dir("estimatethreads");
  write_npy(dir.file("v.npy"), htga::test::pareto(1.5, 200000, 8).to(torch::kFloat32), "200000,");
  auto estimates = [&](const std::string& threads) {
    const auto r = htga::test::htga_cmd("estimate " + dir.file("v.npy") + " --json --threads " + threads, dir);
    REQUIRE(r.code == 0);
    return nlohmann::json::parse(r.out);
  };
  const auto one = estimates("1"), two = estimates("2");
  for (const char* name : {"hill", "pickands", "moment", "stable", "ks"}) {
    INFO(name);
    REQUIRE(one[name]["alpha"].is_number());
    CHECK(two[name]["alpha"].get<double>() == Approx(one[name]["alpha"].get<double>()).epsilon(1e-5));
  }
  const auto zero = htga::test::htga_cmd("estimate " + dir.file("v.npy") + " --threads 0", dir);
  CHECK(zero.code == 2);
  CHECK(zero.out.find("--threads") != std::string::npos);
}

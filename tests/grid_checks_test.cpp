// The checks a grid run makes before anything is written.

#include "experiments/grid_checks.h"

#include <catch2/catch.hpp>
#include <filesystem>

#include "experiments/error.h"
#include "test_util.h"

using namespace htga::experiments;
using htga::InputError;
using htga::test::TempDir;
using nlohmann::json;

namespace {
Grid grid_with(const json& optimizer) {
  json doc = {{"name", "g"},
              {"datasets", {{{"name", "fashion-mnist"}}}},
              {"models", {{{"name", "mlp"}}}},
              {"optimizers", {optimizer}}};
  GridOptions o;
  o.check_data = false;
  return parse_grid(doc, "g.json", o);
}
}  // namespace

TEST_CASE("grid checks: the run's options, heartbeats against --stale-after", "[grid]") {
  RunOptions o;
  CHECK_NOTHROW(check_run_options(o, 4));
  o.stale_after_s = 20;  // two heartbeats of 10 s
  CHECK_THROWS_WITH(check_run_options(o, 4), Catch::Contains("--stale-after 20: want at least 30"));
  o.stale_after_s = 0;
  CHECK_THROWS_AS(check_run_options(o, 4), InputError);
  o = RunOptions{};
  o.jobs = 0;
  CHECK_THROWS_WITH(check_run_options(o, 4), Catch::Contains("--jobs 0"));
  o = RunOptions{};
  o.max_cells = 3;
  CHECK_THROWS_WITH(check_run_options(o, 4), Catch::Contains("--max-cells 3"));
  o.yes = true;
  CHECK_NOTHROW(check_run_options(o, 4));
}

TEST_CASE("grid checks: settings the registry lets through but training could not use", "[grid]") {
  CHECK_NOTHROW(check_cells(grid_with({{"name", "htga"}, {"lr", 0.1}, {"max_lr_change", 1.5}})));
  CHECK_THROWS_WITH(check_cells(grid_with({{"name", "htga"}, {"lr", 0.1}, {"max_lr_change", 0.5}})),
                    Catch::Contains("g.json") && Catch::Contains("max_lr_change"));
  CHECK_THROWS_WITH(check_cells(grid_with({{"name", "htga"}, {"lr", 0.1}, {"lr_min", 0.5}, {"lr_max", 0.2}})),
                    Catch::Contains("lr_min 0.5 > lr_max 0.2"));
  CHECK_THROWS_WITH(check_cells(grid_with({{"name", "sgd"}, {"lr", 1e39}})), Catch::Contains("overflows float32"));
}

TEST_CASE("grid checks: folders to write into, made and removed again when missing", "[grid]") {
  TempDir dir("checks");
  CHECK_NOTHROW(check_folder(dir.file("a/b/c"), "--db x"));
  CHECK_FALSE(std::filesystem::exists(dir.file("a")));  // nothing left behind
  htga::test::write_text(dir.file("file"), "x");
  CHECK_THROWS_WITH(check_folder(dir.file("file/sub"), "--db x"),
                    Catch::StartsWith("--db x: cannot create folder") && Catch::Contains("is not a folder"));
}

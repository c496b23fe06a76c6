// Behaviour unchanged: two tiny grids (every optimizer, both models, schedules, htga's phases,
// clipping by value and norm, probe noise, per-layer scope, two estimators) trained by the
// binary give the step losses, learning rates, alpha_hat and evaluations stored in
// tests/golden/expected.json, which were written by the version before the runner was split
// (commit abe7436). Values are compared to 1e-5 relative: the same build on the same CPU gives
// them bit for bit (checked when they were written); other CPUs may pick other BLAS kernels.
//
// To rewrite the expectations after an intended change of results:
//   HTGA_GOLDEN_WRITE=1 build/htga_tests "[golden]"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "golden_snapshot.h"
#include "test_util.h"

using htga::test::htga_cmd;
using htga::test::TempDir;
using nlohmann::json;

namespace {

void compare(const json& want, const json& got, const std::string& where) {
  INFO(where);
  if (want.is_number() && got.is_number()) {
    const double w = want.get<double>(), g = got.get<double>();
    CHECK(std::abs(w - g) <= 1e-5 * std::max(1.0, std::abs(w)));
    return;
  }
  REQUIRE(want.type() == got.type());
  if (want.is_object()) {
    REQUIRE(want.size() == got.size());
    for (auto it = want.begin(); it != want.end(); ++it) {
      REQUIRE(got.contains(it.key()));
      compare(*it, got[it.key()], where + "/" + it.key());
    }
  } else if (want.is_array()) {
    REQUIRE(want.size() == got.size());
    for (size_t i = 0; i < want.size(); ++i) compare(want[i], got[i], where + "/" + std::to_string(i));
  } else {
    CHECK(want == got);
  }
}

}  // namespace

TEST_CASE("golden grids: the results of the version before the runner was split", "[golden]") {
  REQUIRE(std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"));
  TempDir dir("golden");
  const std::string src = HTGA_SOURCE_DIR "/tests/golden/";
  const std::string db = dir.file("golden.db");
  // The BLAS kernels are pinned to OpenBLAS's SSE3 ones (Prescott), which every x86-64 CPU runs:
  // the expectations were written with kernels that round like them, and on an AMD EPYC the Zen
  // or SkylakeX kernels moved the stable estimator's alpha_hat on probe noise by up to 0.015
  // (deviations that are exactly 0 with one kernel are tiny but non-zero with another).
  const char* before = std::getenv("OPENBLAS_CORETYPE");
  const std::string saved = before ? before : "";
  setenv("OPENBLAS_CORETYPE", "Prescott", 1);
  struct Restore {
    const char* before;
    std::string saved;
    ~Restore() { before ? setenv("OPENBLAS_CORETYPE", saved.c_str(), 1) : unsetenv("OPENBLAS_CORETYPE"); }
  } restore{before, saved};
  for (const char* grid : {"grid-a.json", "grid-b.json"}) {
    auto run = htga_cmd("run grid " + src + grid + " --db " + db + " -q", dir);
    INFO(run.out);
    REQUIRE(run.code == 0);
  }
  const json got = htga::test::golden_snapshot(db);
  REQUIRE(got.size() == 16);
  if (std::getenv("HTGA_GOLDEN_WRITE")) {
    std::ofstream(src + "expected.json") << got.dump(1) << "\n";
    WARN("wrote " << src << "expected.json");
    return;
  }
  std::ifstream in(src + "expected.json");
  REQUIRE(in);
  compare(json::parse(in), got, "expected.json");
}

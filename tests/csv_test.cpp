#include "cli/csv.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "test_util.h"

using namespace htga::cli;

TEST_CASE("CSV fields are quoted only when needed", "[cli]") {
  CHECK(csv_field("plain") == "plain");
  CHECK(csv_field("a,b") == "\"a,b\"");
  CHECK(csv_field("say \"hi\"") == "\"say \"\"hi\"\"\"");
  CHECK(csv_field("two\nlines") == "\"two\nlines\"");
  CHECK(csv_line({"a", "[256,128]", ""}) == "a,\"[256,128]\",\n");
  CHECK(csv_number(NAN).empty());
  CHECK(csv_number(INFINITY).empty());
  CHECK(csv_number(0.05) == "0.05");
  CHECK(csv_number(0.1f) == "0.100000001");  // float32 values keep their exact digits
  CHECK(csv_number(3) == "3");
}

TEST_CASE("configs flatten to dotted columns", "[cli]") {
  std::map<std::string, std::string> out;
  flatten_json(nlohmann::json::parse(R"({"optimizer":{"name":"htga","lr":0.05,"lr_min":null},
                                          "model":{"hidden":[256,128]},"seed":3})"),
               "", out);
  CHECK(out.at("optimizer.name") == "htga");
  CHECK(out.at("optimizer.lr") == "0.05");
  CHECK(out.at("optimizer.lr_min").empty());
  CHECK(out.at("model.hidden") == "[256,128]");
  CHECK(out.at("seed") == "3");
}

TEST_CASE("an uncommitted atomic file leaves the target untouched", "[cli]") {
  htga::test::TempDir dir("atomic");
  const std::string path = dir.file("out/x.csv");
  {
    AtomicFile f(path);
    f.write("first\n");
    f.commit();
  }
  {
    AtomicFile f(path);
    f.write("second\n");
  }  // no commit: abandoned
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  CHECK(s.str() == "first\n");
  CHECK(std::distance(std::filesystem::directory_iterator(dir.file("out")), {}) == 1);  // no temp files left
  CHECK_THROWS_AS(AtomicFile("/proc/nope/x.csv"), std::invalid_argument);
}

#include "experiments/grid.h"

#include <catch2/catch.hpp>

#include "experiments/error.h"

using htga::InputError;
using htga::experiments::parse_grid;
using nlohmann::json;

namespace {
const htga::experiments::GridOptions kNoData{/*check_data=*/false};

json quickstart() {
  return json::parse(R"({
    "name": "quickstart",
    "defaults": {"epochs": 1, "batch_size": 128, "device": "auto"},
    "datasets": [{"name": "fashion-mnist", "train_size": 4096}],
    "models": [{"name": "mlp", "hidden": [256, 128]}],
    "optimizers": [
      {"name": "sgd-clip", "lr": [0.05, 0.1], "clip_norm": 1.0},
      {"name": "htga", "lr": 0.05, "alpha0": 1.5, "beta": [0.5, 1.0], "clip_norm": 1.0}
    ],
    "seeds": [0, 1]
  })");
}

std::string error_of(const json& doc) {
  try {
    parse_grid(doc, "g.json", kNoData);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("the quick-start grid expands to the cartesian product", "[grid]") {
  auto g = parse_grid(quickstart(), "g.json", kNoData);
  CHECK(g.name == "quickstart");
  REQUIRE(g.cells.size() == 8);  // (2 sgd-clip lrs + 2 htga betas) x 2 seeds
  const auto& c = g.cells.front().config;
  CHECK(c["dataset"]["train_size"] == 4096);
  CHECK(c["dataset"]["path"] == "/usr/share/datasets/fashion-mnist");  // default filled in
  CHECK(c["model"]["hidden"] == json::array({256, 128}));              // a list value, not expanded
  CHECK(c["train"]["alpha_every"] == 1);
  int htga = 0;
  for (const auto& cell : g.cells) htga += cell.config["optimizer"]["name"] == "htga";
  CHECK(htga == 4);
  CHECK(g.cells[0].label.find("lr=0.05") != std::string::npos);
}

TEST_CASE("cell keys are stable and ignore the device and number spelling", "[grid]") {
  auto a = parse_grid(quickstart(), "g.json", kNoData);
  json doc = quickstart();
  doc["defaults"]["device"] = "cpu";
  doc["optimizers"][0]["clip_norm"] = 1;  // integer spelling of 1.0
  auto b = parse_grid(doc, "g.json", kNoData);
  REQUIRE(a.cells.size() == b.cells.size());
  for (size_t i = 0; i < a.cells.size(); ++i) CHECK(a.cells[i].key == b.cells[i].key);
  // Different seeds, different keys; a default given explicitly changes nothing.
  CHECK(a.cells[0].key != a.cells[1].key);
  doc["optimizers"][0]["weight_decay"] = 0.0;
  CHECK(parse_grid(doc, "g.json", kNoData).cells[0].key == a.cells[0].key);
  CHECK(a.cells[0].key.size() == 16);
  // A parameter at its default does not enter the key: a later version can add parameters
  // without orphaning the cells already in a database.
  auto without = a.cells[0].config;
  without["optimizer"].erase("weight_decay");
  without["train"].erase("noise_ema");
  CHECK(htga::experiments::cell_key(without) == a.cells[0].key);
  without["optimizer"]["weight_decay"] = 0.01;
  CHECK(htga::experiments::cell_key(without) != a.cells[0].key);
}

TEST_CASE("list-valued parameters expand only from a list of lists", "[grid]") {
  json doc = quickstart();
  doc["models"][0]["hidden"] = json::parse("[[64], [32, 32]]");
  CHECK(parse_grid(doc, "g.json", kNoData).cells.size() == 16);
  doc["defaults"]["epochs"] = json::array({1, 2});
  CHECK(parse_grid(doc, "g.json", kNoData).cells.size() == 32);
}

TEST_CASE("labels name what differs between cells", "[grid]") {
  json doc = quickstart();
  doc["optimizers"] = json::parse(R"([{"name": "sgd", "lr": 0.1}, {"name": "sgd", "lr": 0.3}])");
  doc["seeds"] = json::array({4});
  auto g = parse_grid(doc, "g.json", kNoData);
  REQUIRE(g.cells.size() == 2);
  CHECK(g.cells[0].label == "fashion-mnist/mlp/sgd lr=0.1 seed=4");
  CHECK(g.cells[1].label == "fashion-mnist/mlp/sgd lr=0.3 seed=4");
}

TEST_CASE("duplicate cells are run once", "[grid]") {
  json doc = quickstart();
  doc["optimizers"].push_back(doc["optimizers"][0]);
  CHECK(parse_grid(doc, "g.json", kNoData).cells.size() == 8);
}

TEST_CASE("bad grids name the file, the place and what is valid", "[grid]") {
  json doc = quickstart();
  doc["optimizers"][1]["name"] = "adamx";
  auto msg = error_of(doc);
  CHECK(msg.find("g.json: /optimizers/1/name") == 0);
  CHECK(msg.find("unknown optimizer \"adamx\"") != std::string::npos);
  CHECK(msg.find("sgd-clip") != std::string::npos);

  doc = quickstart();
  doc["optimizers"][1]["lr"] = "fast";
  CHECK(error_of(doc) == "g.json: /optimizers/1/lr: expected a number, got \"fast\"");

  doc = quickstart();
  doc["optimizers"][0]["lr"] = json::array({0.1, -1});
  CHECK(error_of(doc) == "g.json: /optimizers/0/lr/1: must be > 0, got -1");

  doc = quickstart();
  doc["optimizers"][0]["momentum"] = 0.9;
  CHECK(error_of(doc).find("g.json: /optimizers/0/momentum: unknown parameter of optimizer \"sgd-clip\"") == 0);

  doc = quickstart();
  doc["optimizer"] = json::array();
  CHECK(error_of(doc).find("g.json: /optimizer: unknown key") == 0);

  doc = quickstart();
  doc["seeds"] = json::array({0, "one"});
  CHECK(error_of(doc) == "g.json: /seeds/1: expected an integer, got \"one\"");

  doc = quickstart();
  doc["models"][0]["hidden"] = json::array();
  CHECK(error_of(doc).find("g.json: /models/0/hidden: expected a list of positive integers") == 0);

  doc = quickstart();
  doc["defaults"]["estimator"] = "pickand";
  CHECK(error_of(doc) ==
        "g.json: /defaults/estimator: unknown value \"pickand\"; valid: hill, pickands, moment, stable, ks");

  doc = quickstart();
  doc.erase("datasets");
  CHECK(error_of(doc) == "g.json: /: missing \"datasets\": a list of datasets");

  CHECK(error_of(json::array()) == "g.json: /: a grid is a JSON object, got a list");
}

TEST_CASE("a missing dataset folder is found before anything runs", "[grid]") {
  json doc = quickstart();
  doc["datasets"][0]["path"] = "/nonexistent/fmnist";
  try {
    parse_grid(doc, "g.json");
    FAIL("expected an error");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()) == "g.json: /datasets/0: /nonexistent/fmnist: dataset folder not found");
  }
}

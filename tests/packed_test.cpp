// The packed dataset: a tiny ImageNet-like folder of JPEGs made here, packed with pack_dataset,
// loaded as {"name": "packed"} and trained through the Trainer, with its images streamed by
// worker threads: the same steps for any number of threads, a stop and resume in the middle of
// an epoch equal to an uninterrupted run, and a truncated pack refused by grid validation.

#include "experiments/data/packed.h"

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "experiments/error.h"
#include "experiments/pack/image.h"
#include "experiments/pack/pack.h"
#include "experiments/stop.h"
#include "experiments/trainer.h"
#include "storage/store.h"
#include "storage/writer.h"
#include "test_util.h"
#include "units_util.h"

namespace fs = std::filesystem;
using htga::experiments::CellStatus;
using htga::experiments::CellWriter;
using htga::experiments::Trainer;
using htga::experiments::TrainerOptions;
using htga::test::TempDir;
using nlohmann::json;

namespace {

/// ROOT/train/<class>/ with 10 JPEGs of 40x30 pixels per class and ROOT/val/<class>/ with 3:
/// each class its own dominant colour, with some texture.
void make_folder(const fs::path& root) {
  htga::pack::JpegCodec codec;
  for (int c = 0; c < 3; ++c)
    for (const auto& [split, count] : {std::pair<const char*, int>{"train", 10}, {"val", 3}})
      for (int k = 0; k < count; ++k) {
        htga::pack::RgbImage img{30, 40, std::vector<uint8_t>(30 * 40 * 3)};
        for (int y = 0; y < 30; ++y)
          for (int x = 0; x < 40; ++x)
            for (int ch = 0; ch < 3; ++ch)
              img.pixels[(y * 40 + x) * 3 + ch] = static_cast<uint8_t>(
                  (ch == c ? 180 : 60) + 40 * std::sin(0.3 * x + 0.2 * y + k + 7 * std::string(split).size()));
        const fs::path dir = root / split / fmt::format("n0{}", c + 1);
        fs::create_directories(dir);
        std::ofstream(dir / fmt::format("img{}.jpg", k), std::ios::binary) << codec.encode(img, 90);
      }
}

std::string pack_folder(const TempDir& dir) {
  make_folder(dir.file("root"));
  htga::pack::PackSettings s;
  s.root = dir.file("root");
  s.out = dir.file("packs");
  s.size = 36;
  s.progress_every_s = 0;
  std::ostringstream err;
  htga::pack::pack_dataset(s, err);
  return s.out;
}

htga::storage::RunRecord record(const std::string& key) {
  htga::storage::RunRecord r;
  r.cell_key = key;
  r.config_json = "{}";
  r.host = "unit";
  r.pid = 1;
  return r;
}

std::vector<double> losses(htga::storage::Writer& w, int64_t run_id) {
  return w.call([&](htga::storage::Store& s) {
    std::vector<double> out;
    s.for_each_step([&](int64_t id, const htga::storage::StepRow& r) {
      if (id == run_id) out.push_back(r.loss);
    });
    return out;
  });
}

const json kSgd = {{"name", "sgd"}, {"lr", 0.05}};

json train_settings(int threads) {
  return {{"epochs", 2},          {"batch_size", 8},  {"device", "cpu"},
          {"train_eval_size", 0}, {"alpha_every", 1}, {"loader_threads", threads}};
}

}  // namespace

TEST_CASE("packed: a packed folder loads with its splits and streams normalised batches", "[packed]") {
  TempDir dir("packed-load");
  const std::string packs = pack_folder(dir);
  const json config = {{"name", "packed"}, {"path", packs}, {"crop", 32}, {"val_size", 3}};
  htga::data::check_available(config);
  const auto d = htga::data::load_dataset(config, torch::kCPU);
  REQUIRE(d.packed);
  CHECK(d.num_classes == 3);
  CHECK(d.train_size() == 27);
  CHECK(d.val_size() == 3);
  CHECK(d.test_size() == 9);
  CHECK_FALSE(d.train_x.defined());  // nothing held in memory
  // A batch through Task::batch (the probe's path): resized and centre-cropped, normalised with
  // ImageNet's statistics: (v / 255 - mean) / std lies in [-mean/std, (1 - mean)/std].
  htga::experiments::Task task(d);
  const auto b = task.batch(torch::arange(5), /*augment_gen=*/nullptr);
  CHECK(b.x.sizes() == torch::IntArrayRef({5, 3, 32, 32}));
  CHECK(b.y.sizes() == torch::IntArrayRef({5}));
  CHECK(b.x.min().item<double>() >= -0.485 / 0.229 - 1e-5);
  CHECK(b.x.max().item<double>() <= (1 - 0.406) / 0.225 + 1e-5);
  // The class colour survives: the mean of the class's own channel is the highest.
  for (int64_t i = 0; i < 5; ++i) {
    const int64_t label = b.y[i].item<int64_t>();
    const auto raw = b.x[i].mean({1, 2}) * torch::tensor({0.229, 0.224, 0.225}) + torch::tensor({0.485, 0.456, 0.406});
    CHECK(raw.argmax().item<int64_t>() == label);
  }
}

TEST_CASE("packed: trains through the Trainer, the same steps for 1 and 3 loader threads", "[packed]") {
  TempDir dir("packed-train");
  const std::string packs = pack_folder(dir);
  const json config = {{"name", "packed"}, {"path", packs}, {"crop", 32}, {"val_size", 3}};
  const auto data = htga::data::load_dataset(config, torch::kCPU);
  htga::storage::Writer w(std::make_unique<htga::storage::Store>(dir.file("t.db")));
  std::vector<std::vector<double>> runs;
  for (int threads : {1, 3}) {
    INFO("loader_threads " << threads);
    const auto settings = htga::test::one_cell(kSgd, train_settings(threads));
    CHECK(settings.train.loader_threads == threads);
    const auto claim =
        w.call([&](htga::storage::Store& s) { return s.claim_run(record(fmt::format("t{}", threads)), 60, true); });
    CellWriter out(w, claim.fence());
    const auto outcome = Trainer(settings, data, torch::kCPU, out, TrainerOptions{}).run();
    out.sync();
    CHECK(outcome.status == CellStatus::kFinished);
    CHECK(outcome.steps == 8);  // 2 epochs of ceil(27 / 8)
    CHECK(std::isfinite(outcome.test_loss));
    CHECK(std::isfinite(outcome.val_acc));
    CHECK(std::isfinite(outcome.train_acc));
    runs.push_back(losses(w, claim.run_id));
    REQUIRE(runs.back().size() == 8);
    for (double l : runs.back()) CHECK(std::isfinite(l));
  }
  CHECK(runs[0] == runs[1]);  // bit for bit
}

/// A packed dataset, a database with one uninterrupted run of the cell ("straight"), and the same
/// cell run again ("resumed"): first until `stop` ends it, then resumed to the end.
struct StopAndResume {
  TempDir dir;
  htga::data::Dataset data;
  htga::experiments::CellSettings settings = htga::test::one_cell(kSgd, train_settings(2));
  htga::storage::Writer w;
  TrainerOptions o;
  htga::storage::Claim straight;

  explicit StopAndResume(const std::string& name)
      : dir(name),
        data(htga::data::load_dataset({{"name", "packed"}, {"path", pack_folder(dir)}, {"crop", 32}}, torch::kCPU)),
        w(std::make_unique<htga::storage::Store>(dir.file("t.db"))) {
    o.checkpoint_dir = dir.file("ckpt");
    straight = w.call([](htga::storage::Store& s) { return s.claim_run(record("straight"), 60, true); });
    CellWriter out(w, straight.fence());
    Trainer(settings, data, torch::kCPU, out, o).run();
    out.sync();
  }

  /// The first attempt, recorded as interrupted; `check` looks at it before it is closed.
  void interrupted(const std::function<bool()>& stop,
                   const std::function<void(const htga::experiments::CellOutcome&, int64_t)>& check = {}) {
    const auto first = w.call([](htga::storage::Store& s) { return s.claim_run(record("resumed"), 60, true); });
    CellWriter out(w, first.fence());
    TrainerOptions stopping = o;
    stopping.stop = stop;
    const auto outcome = Trainer(settings, data, torch::kCPU, out, stopping).run();
    htga::experiments::reset_stop();
    out.sync();
    REQUIRE(outcome.status == CellStatus::kInterrupted);
    if (check) check(outcome, first.run_id);
    htga::storage::RunResult result;
    result.status = "interrupted";
    result.error = outcome.error;
    w.call([&](htga::storage::Store& s) { s.finish_run(first.fence(), result); });
  }

  /// The second attempt, from the first one's checkpoint, to the end.
  std::pair<htga::storage::Claim, htga::experiments::CellOutcome> resumed() {
    const auto again = w.call([](htga::storage::Store& s) { return s.claim_run(record("resumed"), 60, true); });
    REQUIRE(again.resumed);
    CellWriter out(w, again.fence());
    Trainer t(settings, data, torch::kCPU, out, o);
    t.resume(again.checkpoint, again.from_epoch - 1, again.from_step);
    auto outcome = t.run();
    out.sync();
    return {again, outcome};
  }
};

TEST_CASE("packed: a stop in the middle of an epoch, then a resume: the steps of an uninterrupted run", "[packed]") {
  StopAndResume r("packed-resume");
  int64_t steps = 0;
  r.interrupted([&] { return ++steps == 6; });  // in epoch 1 (steps 4..7)
  const auto [again, outcome] = r.resumed();
  CHECK(outcome.status == CellStatus::kFinished);
  CHECK(losses(r.w, again.run_id) == losses(r.w, r.straight.run_id));
}

TEST_CASE("packed: a stop during a streamed evaluation records nothing for it; the resumed cell evaluates again",
          "[packed]") {
  StopAndResume r("packed-evalstop");
  int64_t steps = 0;
  // The signal arrives during epoch 0's last step: the step completes, the evaluation stops.
  r.interrupted(
      [&] {
        if (++steps == 4) htga::experiments::request_stop();
        return false;
      },
      [&](const htga::experiments::CellOutcome& outcome, int64_t run_id) {
        CHECK(outcome.steps == 4);
        CHECK(r.w.call([&](htga::storage::Store& s) { return s.evals(run_id); }).empty());
      });
  const auto [again, outcome] = r.resumed();
  CHECK(again.from_step == 4);
  CHECK(outcome.status == CellStatus::kFinished);
  CHECK(std::isfinite(outcome.test_acc));
  CHECK(losses(r.w, again.run_id) == losses(r.w, r.straight.run_id));
  const auto evals = r.w.call([&](htga::storage::Store& s) { return s.evals(again.run_id); });
  const auto expected = r.w.call([&](htga::storage::Store& s) { return s.evals(r.straight.run_id); });
  REQUIRE(evals.size() == expected.size());
  for (size_t i = 0; i < evals.size(); ++i) {
    CHECK(evals[i].epoch == expected[i].epoch);
    CHECK(evals[i].split == expected[i].split);
    CHECK(evals[i].step == expected[i].step);
    CHECK(evals[i].loss == expected[i].loss);
    CHECK(evals[i].acc == expected[i].acc);
  }
}

TEST_CASE("packed: grid validation refuses a truncated pack before anything is written", "[packed]") {
  TempDir dir("packed-truncated");
  const std::string packs = pack_folder(dir);
  const json dataset = {{"name", "packed"}, {"path", packs}, {"crop", 32}};
  const json doc = {{"name", "unit"},        {"defaults", {{"epochs", 1}, {"device", "cpu"}}},
                    {"datasets", {dataset}}, {"models", {{{"name", "mlp"}, {"hidden", {8}}}}},
                    {"optimizers", {kSgd}},  {"seeds", {1}}};
  CHECK_NOTHROW(htga::experiments::parse_grid(doc, "g.json", {}));
  const fs::path val = fs::path(packs) / "val.pack";
  fs::resize_file(val, fs::file_size(val) - 10);
  CHECK_THROWS_AS(htga::experiments::parse_grid(doc, "g.json", {}), htga::InputError);
  CHECK_THROWS_WITH(htga::data::check_available(dataset), Catch::Contains("val.pack: truncated"));
  fs::remove(val);
  CHECK_THROWS_WITH(htga::data::check_available(dataset), Catch::Contains("val.pack: not found"));
}

TEST_CASE("packed: htga pack, then a grid on the packs end to end; a truncated pack exits 2", "[packed]") {
  TempDir dir("packed-e2e");
  make_folder(dir.file("root"));
  auto pack = htga::test::htga_cmd("pack " + dir.file("root") + " --out " + dir.file("packs") + " --size 36", dir);
  INFO(pack.out);
  REQUIRE(pack.code == 0);
  htga::test::write_text(
      dir.file("g.json"),
      json{{"name", "packed-e2e"},
           {"defaults", {{"epochs", 1}, {"batch_size", 8}, {"device", "cpu"}, {"loader_threads", 2}}},
           {"datasets", {{{"name", "packed"}, {"path", dir.file("packs")}, {"crop", 32}, {"val_size", 3}}}},
           {"models", {{{"name", "cnn"}, {"channels", {4}}, {"hidden", {8}}}}},
           {"optimizers", {kSgd}},
           {"seeds", {0}}}
          .dump());
  auto run = htga::test::htga_cmd("run grid " + dir.file("g.json") + " --db " + dir.file("a.db"), dir);
  INFO(run.out);
  REQUIRE(run.code == 0);
  {
    htga::storage::Store store(dir.file("a.db"));
    const auto runs = store.runs();
    REQUIRE(runs.size() == 1);
    CHECK(runs[0].status == "finished");
    CHECK(runs[0].steps == 4);  // ceil(27 / 8)
    CHECK(std::isfinite(runs[0].test_acc));
  }
  const fs::path train = fs::path(dir.file("packs")) / "train.pack";
  fs::resize_file(train, fs::file_size(train) / 2);
  auto refused = htga::test::htga_cmd("run grid " + dir.file("g.json") + " --db " + dir.file("b.db"), dir);
  INFO(refused.out);
  CHECK(refused.code == 2);
  CHECK(refused.out.find("train.pack: truncated") != std::string::npos);
  CHECK_FALSE(fs::exists(dir.file("b.db")));
}

// The training loop of one cell, on a tiny synthetic dataset: it trains to the end, stops when
// asked, resumes from its checkpoint bit for bit, and stops writing once its claim is lost.

#include "experiments/trainer.h"

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "storage/store.h"
#include "storage/writer.h"
#include "test_util.h"
#include "units_util.h"

using htga::experiments::CellStatus;
using htga::experiments::CellWriter;
using htga::experiments::Trainer;
using htga::experiments::TrainerOptions;
using htga::test::TempDir;
using nlohmann::json;

namespace {

htga::storage::RunRecord record(const std::string& key) {
  htga::storage::RunRecord r;
  r.cell_key = key;
  r.config_json = "{}";
  r.host = "unit";
  r.pid = 1;
  return r;
}

int64_t count(htga::storage::Writer& w, const std::string& sql) {
  return w.call([&](htga::storage::Store& s) {
    htga::storage::Statement q(s.database(), sql.c_str());
    q.step();
    return q.get_int(0);
  });
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

const json kHtga = {{"name", "htga"}, {"lr", 0.05}, {"warmup_steps", 1}};
const json kTrain = {{"epochs", 3}, {"batch_size", 16}, {"device", "cpu"}, {"train_eval_size", 0}};

}  // namespace

TEST_CASE("trainer: trains to the end, writes every step and evaluation", "[trainer]") {
  TempDir dir("trainer");
  const auto data = htga::test::tiny_images();
  const auto settings = htga::test::one_cell(kHtga, kTrain);
  htga::storage::Writer w(std::make_unique<htga::storage::Store>(dir.file("t.db")));
  const auto claim = w.call([](htga::storage::Store& s) { return s.claim_run(record("a"), 60, true); });
  CellWriter out(w, claim.fence());
  TrainerOptions o;
  o.flush_every = 4;
  o.checkpoint_dir = dir.file("ckpt");
  int64_t ticks = 0;
  o.on_flush = [&](int64_t, int64_t, double, double) { ++ticks; };
  Trainer t(settings, data, torch::kCPU, out, o);
  const auto outcome = t.run();
  out.sync();
  CHECK(outcome.status == CellStatus::kFinished);
  CHECK(outcome.steps == 18);     // 3 epochs of 96 / 16
  CHECK(outcome.test_acc > 0.4);  // chance is 1/3
  CHECK(std::isfinite(outcome.train_acc));
  CHECK(count(w, "SELECT count(*) FROM steps") == 18);
  CHECK(count(w, "SELECT count(*) FROM evals WHERE split = 'test'") == 3);
  CHECK(count(w, "SELECT count(*) FROM evals WHERE split = 'train'") == 1);
  CHECK(ticks >= 4);
  // A checkpoint after epochs 0 and 1, the older removed once the newer is recorded.
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir.file("ckpt"))) files.push_back(e.path().string());
  REQUIRE(files.size() == 1);
  CHECK(files[0].find("-e1.pt") != std::string::npos);
}

TEST_CASE("trainer: a stop, then a resume from the checkpoint: the steps of an uninterrupted run", "[trainer]") {
  TempDir dir("trainer-resume");
  const auto data = htga::test::tiny_images();
  const auto settings = htga::test::one_cell(kHtga, kTrain);
  htga::storage::Writer w(std::make_unique<htga::storage::Store>(dir.file("t.db")));
  TrainerOptions o;
  o.checkpoint_dir = dir.file("ckpt");

  const auto straight = w.call([](htga::storage::Store& s) { return s.claim_run(record("straight"), 60, true); });
  {
    CellWriter out(w, straight.fence());
    Trainer(settings, data, torch::kCPU, out, o).run();
    out.sync();
  }
  // Stopped in the middle of epoch 1 (steps 6..11) and of epoch 0 (steps 0..5): a checkpoint at
  // that very step, and the resumed run goes on from it.
  for (const int64_t stop_at : {int64_t{8}, int64_t{3}}) {
    INFO("stopped after step " << stop_at);
    const std::string key = "resumed" + std::to_string(stop_at);
    const auto first = w.call([&](htga::storage::Store& s) { return s.claim_run(record(key), 60, true); });
    {
      CellWriter out(w, first.fence());
      int64_t steps = 0;
      TrainerOptions stopping = o;
      stopping.stop = [&] { return ++steps == stop_at; };
      const auto outcome = Trainer(settings, data, torch::kCPU, out, stopping).run();
      out.sync();
      CHECK(outcome.status == CellStatus::kInterrupted);
      CHECK(outcome.steps == stop_at);
      CHECK(outcome.error.find(fmt::format("-e{}-s{}.pt", stop_at / 6, stop_at)) != std::string::npos);
      htga::storage::RunResult result;
      result.status = "interrupted";
      result.error = outcome.error;
      w.call([&](htga::storage::Store& s) { s.finish_run(first.fence(), result); });
    }
    const auto again = w.call([&](htga::storage::Store& s) { return s.claim_run(record(key), 60, true); });
    REQUIRE(again.resumed);
    CHECK(again.from_epoch == stop_at / 6);  // the epoch it stopped in
    CHECK(again.from_step == stop_at);
    CellWriter out(w, again.fence());
    Trainer t(settings, data, torch::kCPU, out, o);
    t.resume(again.checkpoint, again.from_epoch - 1, again.from_step);
    CHECK(t.run().status == CellStatus::kFinished);
    out.sync();
    CHECK(losses(w, again.run_id) == losses(w, straight.run_id));
  }
}

TEST_CASE("trainer: once another process takes the cell over, nothing more is written", "[trainer]") {
  TempDir dir("trainer-lost");
  const auto data = htga::test::tiny_images();
  const auto settings = htga::test::one_cell(kHtga, kTrain);
  htga::storage::Writer w(std::make_unique<htga::storage::Store>(dir.file("t.db")));
  const auto claim = w.call([](htga::storage::Store& s) { return s.claim_run(record("a"), 60, true); });
  CellWriter out(w, claim.fence());
  TrainerOptions o;
  o.flush_every = 2;
  o.checkpoint_dir = dir.file("ckpt");
  int64_t flushes = 0;
  o.on_flush = [&](int64_t, int64_t, double, double) {
    if (++flushes == 2) {
      // Another process (another host) finds the heartbeat stale and takes the cell.
      auto other = record("a");
      other.host = "elsewhere";
      CHECK(w.call([&](htga::storage::Store& s) { return s.claim_run(other, 1e-9, false); }).run_id == claim.run_id);
    } else if (flushes > 2) {
      out.sync();  // the writes of this flush have met the new claim: the loop sees it now
    }
  };
  const auto outcome = Trainer(settings, data, torch::kCPU, out, o).run();
  out.sync();
  CHECK(outcome.status == CellStatus::kLost);
  CHECK(out.lost());
  CHECK(count(w, "SELECT count(*) FROM steps") == 0);  // the takeover cleared them; none came after
  CHECK(count(w, "SELECT count(*) FROM evals") == 0);
  CHECK_FALSE((std::filesystem::exists(dir.file("ckpt")) && !std::filesystem::is_empty(dir.file("ckpt"))));
}

TEST_CASE("trainer: test_every and val_every evaluate their split on their epochs and always after the last",
          "[trainer]") {
  TempDir dir("trainer-test-every");
  auto data = htga::test::tiny_images();
  const auto val = htga::test::tiny_images(11);
  data.val_x = val.test_x;
  data.val_y = val.test_y;
  for (const auto& [every, test_epochs] :
       std::vector<std::pair<int, std::string>>{{0, "2"}, {2, "1,2"}, {1, "0,1,2"}}) {
    json train = kTrain;
    train["test_every"] = every;
    train["val_every"] = every == 1 ? 0 : 1;  // validation: after the last epoch only, or every epoch
    const auto settings = htga::test::one_cell(kHtga, train);
    htga::storage::Writer w(std::make_unique<htga::storage::Store>(dir.file(fmt::format("t{}.db", every))));
    const auto claim = w.call([](htga::storage::Store& s) { return s.claim_run(record("a"), 60, true); });
    CellWriter out(w, claim.fence());
    Trainer t(settings, data, torch::kCPU, out, TrainerOptions{});
    const auto outcome = t.run();
    out.sync();
    CHECK(outcome.status == CellStatus::kFinished);
    CHECK(std::isfinite(outcome.test_acc));
    CHECK(count(w, "SELECT count(*) FROM evals WHERE split = 'val'") == (every == 1 ? 1 : 3));
    CHECK(count(w, "SELECT count(*) FROM evals WHERE split = 'val' AND epoch = 2 AND final = 1") == 1);
    CHECK(std::isfinite(outcome.val_acc));
    const auto epochs = w.call([](htga::storage::Store& s) {
      htga::storage::Statement q(s.database(),
                                 "SELECT group_concat(epoch) FROM (SELECT epoch FROM evals "
                                 "WHERE split = 'test' ORDER BY epoch)");
      q.step();
      return q.get_text(0);
    });
    CHECK(epochs == test_epochs);
  }
}

// The scheduler: shards, the worker pool (every cell once, errors confined to their cell, a
// stop honoured), heartbeats of the active cells, and claims that take over dead holders.

#include "experiments/scheduler.h"

#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <mutex>
#include <set>
#include <stdexcept>

#include "storage/store.h"
#include "test_util.h"

using namespace htga::experiments;
using htga::test::TempDir;

TEST_CASE("scheduler: shards split the cells, each exactly once", "[scheduler]") {
  CHECK(shard_cells(7, 0, 3) == std::vector<size_t>{0, 3, 6});
  CHECK(shard_cells(7, 2, 3) == std::vector<size_t>{2, 5});
  CHECK(shard_cells(2, 1, 1).empty());
  std::multiset<size_t> all;
  for (int i = 0; i < 4; ++i)
    for (size_t c : shard_cells(10, i, 4)) all.insert(c);
  CHECK(all.size() == 10);
  CHECK(std::set<size_t>(all.begin(), all.end()).size() == 10);
}

TEST_CASE("scheduler: the pool runs every cell once; one cell's error does not stop the others", "[scheduler]") {
  for (int jobs : {1, 3}) {
    INFO("jobs " << jobs);
    std::vector<size_t> todo{4, 8, 15, 16, 23, 42};
    std::mutex mu;
    std::multiset<size_t> ran;
    ActiveCells active;
    PoolOptions o;
    o.jobs = jobs;
    o.tick_seconds = 0.01;
    auto work = [&](size_t i) {
      {
        std::lock_guard<std::mutex> lock(mu);
        ran.insert(i);
      }
      if (i == 15) throw std::runtime_error("cell 15 broke");
    };
    CHECK_THROWS_WITH(run_pool(todo, o, work, {}, active, {}), "cell 15 broke");
    CHECK(ran == std::multiset<size_t>(todo.begin(), todo.end()));
  }
}

TEST_CASE("scheduler: a stop ends the pool before the next cell", "[scheduler]") {
  std::atomic<int> ran{0};
  ActiveCells active;
  PoolOptions o;
  run_pool(
      {1, 2, 3, 4}, o, [&](size_t) { ++ran; }, [&] { return ran >= 2; }, active, {});
  CHECK(ran == 2);
}

TEST_CASE("scheduler: heartbeats of the active cells, ticks while cells run", "[scheduler]") {
  TempDir dir("sched");
  htga::storage::Writer w(std::make_unique<htga::storage::Store>(dir.file("s.db")));
  htga::storage::RunRecord rec;
  rec.cell_key = "k";
  rec.config_json = "{}";
  rec.host = host_name();
  rec.pid = getpid();
  const auto claim = claim_cell(w, rec, 60);
  REQUIRE(claim.run_id > 0);
  const double beat0 = w.call([&](htga::storage::Store& s) { return s.run(claim.run_id)->heartbeat_at; });
  CellWriter cell(w, claim.fence());
  ActiveCells active;
  std::atomic<int> ticks{0};
  PoolOptions o;
  o.tick_seconds = 0.01;
  o.heartbeat_seconds = 0.02;
  run_pool(
      {0}, o,
      [&](size_t i) {
        active.add(i, &cell);
        usleep(150 * 1000);
        active.remove(i);
      },
      {}, active, [&] { ++ticks; });
  cell.sync();
  CHECK(ticks >= 3);
  CHECK(w.call([&](htga::storage::Store& s) { return s.run(claim.run_id)->heartbeat_at; }) > beat0);
  CHECK_FALSE(cell.lost());
}

TEST_CASE("scheduler: a claim of this host whose process is gone is taken over at once", "[scheduler]") {
  TempDir dir("sched-claim");
  htga::storage::Writer w(std::make_unique<htga::storage::Store>(dir.file("s.db")));
  htga::storage::RunRecord dead;
  dead.cell_key = "k";
  dead.config_json = "{}";
  dead.host = host_name();
  dead.pid = 999999999;  // no such process
  REQUIRE(claim_cell(w, dead, 600).run_id > 0);
  auto mine = dead;
  mine.pid = getpid();
  const auto taken = claim_cell(w, mine, 600);
  CHECK(taken.run_id > 0);
  auto elsewhere = dead;
  elsewhere.host = "another-host";
  CHECK(claim_cell(w, elsewhere, 600).run_id == 0);  // fresh and alive as far as we can tell
}

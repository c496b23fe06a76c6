#include "optimizers/schedule.h"

#include <catch2/catch.hpp>
#include <cmath>

using htga::optimizers::schedule_factor;
using htga::optimizers::ScheduleOptions;

TEST_CASE("learning-rate schedules: constant, step, cosine, warmup", "[optimizers]") {
  ScheduleOptions o;
  CHECK(schedule_factor(o, 0) == 1.0);
  CHECK(schedule_factor(o, 12345) == 1.0);
  o.kind = "step";
  o.step_every = 10;
  o.gamma = 0.5;
  CHECK(schedule_factor(o, 9) == 1.0);
  CHECK(schedule_factor(o, 10) == 0.5);
  CHECK(schedule_factor(o, 25) == 0.25);
  o.kind = "cosine";
  o.total_steps = 100;
  CHECK(schedule_factor(o, 0) == Approx(1.0));
  CHECK(schedule_factor(o, 50) == Approx(0.5));
  CHECK(schedule_factor(o, 100) == Approx(0.0).margin(1e-12));
  o.warmup_steps = 10;
  CHECK(schedule_factor(o, 0) == Approx(0.1));  // (0 + 1) / 10 of the cosine's start
  CHECK(schedule_factor(o, 9) == Approx(1.0));
  CHECK(schedule_factor(o, 55) == Approx(0.5));  // halfway through the 90 steps after warmup
  o.kind = "linear";
  CHECK_THROWS_AS(schedule_factor(o, 0), std::invalid_argument);
}

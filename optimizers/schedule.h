#pragma once
// Learning-rate schedules shared by every optimizer, as a multiplier m(t) of the base rate, so
// that baselines and HTGA are tuned under the same schedule:
//   warmup:   m(t) *= (t + 1) / warmup_steps   for t < warmup_steps
//   constant: m(t) = 1
//   step:     m(t) = gamma^floor(t / step_every)
//   cosine:   m(t) = (1 + cos(pi * (t - warmup) / (total - warmup))) / 2   (after warmup)

#include <cstdint>
#include <string>

namespace htga::optimizers {

struct ScheduleOptions {
  std::string kind = "constant";  // constant, step, cosine
  int64_t warmup_steps = 0;       // linear warmup from lr / warmup_steps
  int64_t step_every = 1000;      // step: steps between decays
  double gamma = 0.1;             // step: decay factor
  int64_t total_steps = 0;        // cosine: steps of the whole run
};

/// The multiplier at step t (0-based). Throws std::invalid_argument for an unknown kind.
double schedule_factor(const ScheduleOptions& options, int64_t t);

}  // namespace htga::optimizers

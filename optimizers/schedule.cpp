#include "optimizers/schedule.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace htga::optimizers {

double schedule_factor(const ScheduleOptions& o, int64_t t) {
  double m = 1.0;
  if (o.kind == "step") {
    m = std::pow(o.gamma, static_cast<double>(t / std::max<int64_t>(1, o.step_every)));
  } else if (o.kind == "cosine") {
    const int64_t span = std::max<int64_t>(1, o.total_steps - o.warmup_steps);
    const double progress = std::clamp(static_cast<double>(t - o.warmup_steps) / span, 0.0, 1.0);
    m = 0.5 * (1.0 + std::cos(M_PI * progress));
  } else if (o.kind != "constant") {
    throw std::invalid_argument("unknown schedule \"" + o.kind + "\"; valid: constant, step, cosine");
  }
  if (t < o.warmup_steps) m *= static_cast<double>(t + 1) / static_cast<double>(o.warmup_steps);
  return m;
}

}  // namespace htga::optimizers

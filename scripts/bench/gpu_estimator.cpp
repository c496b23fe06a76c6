// alpha_hat's cost on its own, as the runner calls it (AlphaMonitor, online noise, global Hill),
// eager and replayed as a CUDA graph, for the gradient sizes of the benchmark models.
// Each estimate is timed from an idle device to its result on the device (synchronised before
// and after), so the figure is the estimator's full latency: an upper bound on what it adds to a
// step, where the host's launches overlap the device's work.
// Usage: htga_bench_gpu [device] (default: cuda when available). Prints one JSON object.

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "estimators/noise.h"
#include "experiments/alpha_monitor.h"
#include "experiments/torch_compat.h"

using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  const std::string name = argc > 1 ? argv[1] : (torch::cuda::is_available() ? "cuda" : "cpu");
  const torch::Device device(name);
  torch::NoGradGuard no_grad;
  nlohmann::json out;
  out["device"] = device.str();
  out["cuda_support_built"] = htga::compat::cuda_support_built();
  // Parameter counts of the MLP 784-256-128-10, ResNet-20 and the 4-layer transformer benchmarked.
  for (const auto& [model, n] :
       std::vector<std::pair<std::string, int64_t>>{{"mlp", 235146}, {"resnet20", 269722}, {"transformer", 3556866}}) {
    for (const bool graph : {false, true}) {
      std::vector<torch::Tensor> params{torch::zeros({n}, torch::TensorOptions().device(device)).requires_grad_()};
      auto flat = htga::estimators::bind_flat_gradients(params);
      htga::experiments::AlphaSettings s;
      s.graph = graph;
      htga::experiments::AlphaMonitor monitor(s, params, flat, 0);
      // Heavy-tailed gradients (Student t with 1.5 degrees of freedom, by ratio), fresh each step.
      auto fill = [&] {
        // (the denominator kept off zero: an infinite coordinate would poison the gradient EMA)
        flat.copy_(torch::randn({n}, flat.options()) /
                   torch::randn({n}, flat.options()).abs().clamp_min(1e-6).pow(1 / 1.5));
      };
      std::vector<double> us;
      double alpha = 0;
      for (int64_t step = 0; step < 230; ++step) {
        fill();
        htga::compat::synchronize(device);
        const auto t0 = Clock::now();
        auto r = monitor.observe(step);
        htga::compat::synchronize(device);
        if (step >= 30) us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
        alpha = r.alpha.item<double>();
      }
      std::sort(us.begin(), us.end());
      const std::string key = model + (graph ? "/graph" : "/eager");
      out[key] = {{"n", n},
                  {"median_us", us[us.size() / 2]},
                  {"p10_us", us[us.size() / 10]},
                  {"graphed", monitor.graphed()},
                  {"graph_failure", monitor.graph_failure()},
                  {"last_alpha", alpha}};
    }
  }
  std::printf("%s\n", out.dump(1).c_str());
  return 0;
}

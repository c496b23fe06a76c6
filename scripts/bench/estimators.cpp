// Benchmark of the tail-index estimators (scripts/bench/estimators builds and runs it).
// 1. Cost per call of each estimator for n = 1e5, 1e6, 1e7 (float32, CPU).
// 2. The quick-start MLP (784-256-128-10, batch 128): step time without alpha_hat, with the
//    online global estimate every step, with layer scope, as the runner does them.
// --threads N: intra-op threads (default: LibTorch's); --quick: fewer sizes and repetitions.
// Prints one JSON object. Medians over repetitions.

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>

#include "estimators/hill.h"
#include "estimators/noise.h"
#include "estimators/tail.h"
#include "experiments/alpha_monitor.h"
#include "experiments/models/mlp.h"
#include "optimizers/clip.h"
#include "optimizers/sgd.h"

using Clock = std::chrono::steady_clock;

double median_ms(int reps, const std::function<void()>& fn) {
  std::vector<double> t;
  fn();  // warm-up
  for (int i = 0; i < reps; ++i) {
    auto t0 = Clock::now();
    fn();
    t.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

int main(int argc, char** argv) {
  namespace est = htga::estimators;
  torch::NoGradGuard no_grad;
  nlohmann::json out;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") quick = true;
    if (a == "--threads" && i + 1 < argc) at::set_num_threads(std::atoi(argv[++i]));
  }
  out["threads"] = torch::get_num_threads();
  for (int64_t n : {100000L, 1000000L, 10000000L}) {
    if (quick && n > 1000000) continue;
    auto gen = at::detail::createCPUGenerator(1);
    auto x = (1.0 - torch::rand({n}, gen, torch::kFloat32)).pow(-1.0 / 1.5);
    const int reps = n >= 10000000 ? 3 : 9;
    nlohmann::json row;
    for (const auto& name : est::estimator_names())
      row[name] = median_ms(reps, [&] { est::estimate(name, x).alpha.item<float>(); });
    out["estimator_ms"][std::to_string(n)] = row;
  }

  // The quick-start MLP step, the runner's way: gradients in one flat buffer, zeroed and
  // clipped there; with alpha_hat, the fused pass also gives the norm that clipping needs.
  torch::manual_seed(0);
  htga::models::Mlp model(784, std::vector<int64_t>{256, 128}, 10);
  auto params = model->parameters();
  auto flat_grad = est::bind_flat_gradients(params);
  htga::optimizers::Sgd sgd(params);
  auto gen = at::detail::createCPUGenerator(2);
  auto x = torch::randn({128, 1, 28, 28}, gen, torch::kFloat32);
  auto y = torch::randint(0, 10, {128}, gen, torch::kInt64);
  auto lr = torch::tensor(0.01f);
  const int64_t n_params = flat_grad.numel();
  // alpha_hat as the runner estimates it (noise source, every step), over all parameters as one
  // sample and per parameter tensor.
  htga::experiments::AlphaSettings global_settings, layer_settings;
  layer_settings.scope = htga::experiments::Scope::kLayer;
  htga::experiments::AlphaMonitor global_monitor(global_settings, params, flat_grad, 0);
  htga::experiments::AlphaMonitor layer_monitor(layer_settings, params, flat_grad, 0);
  // For comparison, layer scope as it was done before the slices shared one pass: a pass per
  // parameter tensor, then torch::stack and nanmedian.
  est::EmaNoise noise(0.9);
  std::vector<std::pair<int64_t, int64_t>> slices;
  int64_t offset = 0;
  for (const auto& p : params) {
    slices.push_back({offset, p.numel()});
    offset += p.numel();
  }
  auto layer_each = [&]() -> std::optional<double> {
    if (!noise.started()) {
      noise.update(flat_grad);
      return std::nullopt;
    }
    std::vector<torch::Tensor> a;
    double sumsq = 0;
    bool all = true;
    for (const auto& [off, len] : slices) {
      auto mm = noise.mutable_mean().narrow(0, off, len);
      est::EmaHillExtras extras;
      a.push_back(est::hill_ema_noise(flat_grad.narrow(0, off, len), mm, 0.9, 0, &extras));
      all = all && extras.has_sumsq;
      sumsq += extras.sumsq;
    }
    torch::stack(a).nanmedian();
    return all ? std::optional<double>(sumsq) : std::nullopt;
  };
  enum Mode { kNone, kGlobal, kLayer, kLayerEach };
  int64_t step_index = 0;
  std::vector<std::vector<double>> observe_ms(4);  // the estimate alone, per mode
  auto step = [&](Mode mode) {
    torch::AutoGradMode enable(true);
    flat_grad.zero_();
    auto loss = torch::nn::functional::cross_entropy(model->forward(x), y);
    loss.backward();
    std::optional<double> sumsq;
    const auto t0 = Clock::now();
    if (mode == kLayerEach) {
      sumsq = layer_each();
    } else if (mode != kNone) {
      auto& monitor = mode == kGlobal ? global_monitor : layer_monitor;
      monitor.observe(step_index);
      sumsq = monitor.gradient_sumsq();
    }
    htga::optimizers::clip_flat_grad_norm(flat_grad, 1.0, sumsq);
    observe_ms[mode].push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    ++step_index;
    sgd.step(lr);
    loss.item<float>();
  };
  // Modes interleaved step by step, so that drift in the machine's speed hits all alike.
  const int reps = quick ? 100 : 1000;
  const Mode modes[] = {kNone, kGlobal, kLayer, kLayerEach};
  std::vector<std::vector<double>> times(4);
  for (int r = 0; r < reps + 5; ++r)
    for (int m = 0; m < 4; ++m) {
      auto t0 = Clock::now();
      step(modes[m]);
      if (r >= 5) times[m].push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double none = median(times[0]), global = median(times[1]), layer = median(times[2]),
               layer_before = median(times[3]);
  nlohmann::json mlp;
  mlp["parameters"] = n_params;
  mlp["hill_k"] = est::hill_default_k(n_params);
  mlp["step_ms_no_alpha"] = none;
  mlp["step_ms_global_alpha"] = global;
  mlp["step_ms_layer_alpha"] = layer;
  mlp["alpha_cost_global"] = global / none - 1;
  mlp["alpha_cost_layer"] = layer / none - 1;
  mlp["alpha_cost_layer_pass_per_tensor"] = layer_before / none - 1;
  // The estimate and gradient clipping alone (clipping reads the gradient again unless the
  // estimate's pass summed its squares), ms per step.
  mlp["estimate_and_clip_ms"] = {{"none", median(observe_ms[kNone])},
                                 {"global", median(observe_ms[kGlobal])},
                                 {"layer", median(observe_ms[kLayer])},
                                 {"layer_pass_per_tensor", median(observe_ms[kLayerEach])}};
  auto z = torch::randn({n_params}, gen, torch::kFloat32);
  mlp["hill_ms_on_mlp_sized_vector"] = median_ms(reps, [&] { est::hill(z).item<float>(); });
  {
    // The fused EMA + Hill pass alone on a stream of MLP-sized heavy-tailed gradients (16 of
    // them in turn, so the noise stays noise; about 15 MB, out of the CPU's caches as in training).
    std::vector<torch::Tensor> stream;
    for (int i = 0; i < 16; ++i)
      stream.push_back(torch::randn({n_params}, gen, torch::kFloat32) /
                       torch::rand({n_params}, gen, torch::kFloat32).add_(0.01).sqrt_());
    auto mean = stream[0].clone();
    est::EmaHillExtras ex;
    int64_t i = 0;
    mlp["hill_ema_noise_ms_on_mlp_sized_stream"] =
        median_ms(reps, [&] { est::hill_ema_noise(stream[i++ % 16], mean, 0.9, 0, &ex); });
  }
  out["mlp"] = mlp;
  std::printf("%s\n", out.dump(1).c_str());
}

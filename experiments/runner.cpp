#include "experiments/runner.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <torch/version.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <ostream>

#include "estimators/hill.h"
#include "estimators/noise.h"
#include "experiments/error.h"
#include "experiments/models/mlp.h"
#include "optimizers/clip.h"
#include "optimizers/htga.h"
#include "optimizers/sgd.h"

namespace htga::experiments {

using nlohmann::json;

torch::Device resolve_device(const std::string& name) {
  if (name == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  std::optional<torch::Device> d;
  try {
    d = torch::Device(name);
  } catch (const std::exception&) {
    throw InputError("device \"" + name + "\": unknown; valid: auto, cpu, cuda, cuda:N");
  }
  if (d->is_cuda() && !torch::cuda::is_available())
    throw InputError("device \"" + name + "\": CUDA is not available on this machine (use auto or cpu)");
  if (!d->is_cpu() && !d->is_cuda())
    throw InputError("device \"" + name + "\": unsupported; valid: auto, cpu, cuda, cuda:N");
  return *d;
}

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// Cells whose combination of settings cannot work, reported before anything runs.
void check_cells(const Grid& grid) {
  for (const Cell& c : grid.cells) {
    const json& o = c.config["optimizer"];
    if (o["name"] != "htga") continue;
    if (c.config["train"]["alpha_every"].get<int64_t>() == 0)
      throw InputError(grid.source + ": /defaults/alpha_every: htga needs alpha_hat; alpha_every 0 turns it off");
    const double lr = o["lr"].get<double>();
    const double lo = o["lr_min"].is_null() ? lr / 10 : o["lr_min"].get<double>();
    const double hi = o["lr_max"].is_null() ? lr * 10 : o["lr_max"].get<double>();
    if (lo > hi)
      throw InputError(grid.source + ": " + c.label + ": lr_min " + fmt::format("{}", lo) + " is above lr_max " +
                       fmt::format("{}", hi));
  }
}

torch::nn::AnyModule make_model(const json& cfg, const data::Dataset& d) {
  const std::string name = cfg.at("name").get<std::string>();
  if (name == "mlp") {
    const int64_t in = d.train_x[0].numel();
    return torch::nn::AnyModule(models::Mlp(in, cfg.at("hidden").get<std::vector<int64_t>>(), d.num_classes));
  }
  throw InputError("unknown model \"" + name + "\"");
}

struct Evaluation {
  double loss = 0, acc = 0;
};

Evaluation evaluate(torch::nn::AnyModule& model, torch::nn::Module& module, const torch::Tensor& x,
                    const torch::Tensor& y) {
  torch::NoGradGuard no_grad;
  module.eval();
  const int64_t n = x.size(0), chunk = 4096;
  auto loss_sum = torch::zeros({}, x.options().dtype(torch::kFloat64));
  auto correct = torch::zeros({}, x.options().dtype(torch::kInt64));
  for (int64_t i = 0; i < n; i += chunk) {
    const int64_t len = std::min(chunk, n - i);
    auto logits = model.forward(x.narrow(0, i, len));
    auto yy = y.narrow(0, i, len);
    loss_sum += torch::nn::functional::cross_entropy(
                    logits, yy, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                    .to(torch::kFloat64);
    correct += logits.argmax(1).eq(yy).sum();
  }
  module.train();
  auto both = torch::stack({loss_sum, correct.to(torch::kFloat64)}).cpu();
  return {both[0].item<double>() / n, both[1].item<double>() / n};
}

}  // namespace

CellOutcome train_cell(const Cell& cell, const data::Dataset& d, const torch::Device& device, storage::Store& store,
                       int64_t run_id, int64_t flush_every) {
  const json& cfg = cell.config;
  const json& opt = cfg["optimizer"];
  const json& train = cfg["train"];
  const auto seed = cfg["seed"].get<int64_t>();
  const auto epochs = train["epochs"].get<int64_t>();
  const auto batch = train["batch_size"].get<int64_t>();
  const auto alpha_every = train["alpha_every"].get<int64_t>();
  const std::string opt_name = opt["name"].get<std::string>();

  torch::manual_seed(static_cast<uint64_t>(seed));
  auto model = make_model(cfg["model"], d);
  auto& module = *model.ptr();
  module.to(device);
  const std::vector<torch::Tensor> params = module.parameters();

  optimizers::Sgd sgd(params, optimizers::SgdOptions{opt.value("weight_decay", 0.0)});
  const double clip_norm = opt.value("clip_norm", 0.0);
  std::optional<optimizers::HtgaController> controller;
  if (opt_name == "htga") {
    optimizers::HtgaOptions o(opt["lr"].get<double>());
    o.alpha0 = opt["alpha0"].get<double>();
    o.beta = opt["beta"].get<double>();
    o.lr_min = opt["lr_min"].is_null() ? 0.0 : opt["lr_min"].get<double>();
    o.lr_max = opt["lr_max"].is_null() ? 0.0 : opt["lr_max"].get<double>();
    o.alpha_ema = opt["alpha_ema"].get<double>();
    o.warmup_steps = opt["warmup_steps"].get<int64_t>();
    try {
      controller.emplace(o, device);
    } catch (const std::invalid_argument& e) {
      throw InputError(cell.label + ": " + e.what());
    }
  }
  estimators::EmaNoise noise(train["noise_ema"].get<double>());

  auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  const auto nan = torch::full({}, std::numeric_limits<float>::quiet_NaN(), f32);
  const auto const_lr = torch::full({}, opt["lr"].get<double>(), f32);
  // Batch order has its own generator so that nothing else (the estimator included) can shift it.
  auto order_gen = at::detail::createCPUGenerator(static_cast<uint64_t>(seed));

  const int64_t n = d.train_x.size(0);
  int64_t step = 0;
  std::vector<torch::Tensor> pending;  // per-step [loss, acc, lr, alpha_hat, grad_norm] on device
  std::vector<int64_t> pending_epoch;
  std::vector<storage::StepRow> rows;
  CellOutcome out;

  // Moves buffered statistics to the host in one copy and writes them; returns false at a
  // non-finite loss (rows up to that step are kept). Checking only here keeps the loop free of
  // host synchronisation; a diverged run trains at most flush_every steps past its NaN.
  auto flush = [&]() -> bool {
    if (pending.empty()) return true;
    auto host = torch::stack(pending).to(torch::kCPU, torch::kFloat64).contiguous();
    const double* v = host.data_ptr<double>();
    const int64_t first = step - static_cast<int64_t>(pending.size());
    rows.clear();
    bool ok = true;
    for (size_t i = 0; i < pending.size(); ++i) {
      const double* r = v + 5 * i;
      rows.push_back({first + static_cast<int64_t>(i), pending_epoch[i], r[0], r[1], r[2], r[3], r[4]});
      if (!std::isfinite(r[0])) {
        ok = false;
        out.status = "diverged";
        out.error = fmt::format("loss is {} at step {}", r[0], first + static_cast<int64_t>(i));
        out.steps = first + static_cast<int64_t>(i) + 1;  // the steps stored; later ones are dropped
        break;
      }
    }
    store.append_steps(run_id, rows);
    pending.clear();
    pending_epoch.clear();
    return ok;
  };

  for (int64_t epoch = 0; epoch < epochs; ++epoch) {
    auto perm = torch::randperm(n, order_gen, torch::TensorOptions().dtype(torch::kInt64)).to(device);
    for (int64_t start = 0; start < n; start += batch) {
      const int64_t len = std::min(batch, n - start);
      auto idx = perm.narrow(0, start, len);
      auto x = d.train_x.index_select(0, idx);
      auto y = d.train_y.index_select(0, idx);

      sgd.zero_grad();
      auto logits = model.forward(x);
      auto loss = torch::nn::functional::cross_entropy(logits, y);
      loss.backward();

      // alpha_hat of the gradient noise, on the raw (unclipped) gradient.
      torch::Tensor alpha = nan;
      if (alpha_every > 0) {
        std::vector<torch::Tensor> grads;
        for (const auto& p : params) grads.push_back(p.grad());
        auto g_noise = noise.observe(grads);
        if (g_noise.defined() && step % alpha_every == 0) alpha = estimators::hill(g_noise);
      }
      auto lr = controller ? controller->update(alpha, step) : const_lr;
      auto clip = optimizers::clip_grad_norm(params, clip_norm);
      sgd.step(lr);

      auto acc = logits.detach().argmax(1).eq(y).sum().to(torch::kFloat32) / static_cast<double>(len);
      pending.push_back(
          torch::stack({loss.detach().to(torch::kFloat32), acc, lr, alpha, clip.total_norm.to(torch::kFloat32)}));
      pending_epoch.push_back(epoch);
      ++step;
      if (static_cast<int64_t>(pending.size()) >= flush_every && !flush()) return out;
    }
    if (!flush()) return out;
    const bool last = epoch + 1 == epochs;
    auto ev = evaluate(model, module, d.test_x, d.test_y);
    store.add_eval(run_id, {epoch, step, "test", ev.loss, ev.acc, NAN, last});
    out.test_acc = ev.acc;
    out.test_loss = ev.loss;
    if (last) {  // accuracy on the whole training set, for the generalization gap
      auto tr = evaluate(model, module, d.train_x, d.train_y);
      store.add_eval(run_id, {epoch, step, "train", tr.loss, tr.acc, NAN, true});
      out.train_acc = tr.acc;
    }
  }
  out.status = "finished";
  out.steps = step;
  return out;
}

RunSummary run_grid(const RunOptions& options, std::ostream& progress) {
  namespace fs = std::filesystem;
  // Everything that can be checked is checked before the database is touched.
  Grid grid = load_grid(options.grid_path);
  check_cells(grid);
  std::map<std::string, torch::Device> devices;
  auto device_of = [&](const Cell& c) {
    const std::string name = options.device.empty() ? c.config["train"]["device"].get<std::string>() : options.device;
    auto it = devices.find(name);
    if (it == devices.end()) it = devices.emplace(name, resolve_device(name)).first;
    return it->second;
  };
  for (const Cell& c : grid.cells) device_of(c);

  RunSummary summary;
  summary.cells = static_cast<int>(grid.cells.size());
  auto say = [&](const std::string& line) {
    if (!options.quiet) progress << line << std::endl;
  };

  if (options.dry_run) {
    std::optional<storage::Store> store;
    if (fs::exists(options.db_path)) store.emplace(options.db_path);
    for (size_t i = 0; i < grid.cells.size(); ++i) {
      const Cell& c = grid.cells[i];
      std::string state = "new";
      if (store)
        if (auto r = store->find_run(c.key)) state = r->status;
      if (state == "finished" || state == "diverged") ++summary.skipped;
      progress << fmt::format("[{}/{}] {} {} ({})", i + 1, grid.cells.size(), c.key, c.label, state) << std::endl;
    }
    return summary;
  }

  // The database opens first, so that a bad --db fails fast; datasets load next, once, before any
  // run row is written: a damaged data file stops the grid with nothing stored.
  storage::Store store(options.db_path);
  // A diverged run is a result (the same seed diverges again), not a failure to retry.
  auto done = [&](const Cell& c) {
    auto r = store.find_run(c.key);
    return r && (r->status == "finished" || r->status == "diverged") ? r : std::nullopt;
  };
  std::map<std::string, data::Dataset> loaded;
  for (const Cell& c : grid.cells) {
    const std::string key = c.config["dataset"].dump() + "@" + device_of(c).str();
    if (loaded.count(key) || done(c)) continue;
    auto ds = data::load_dataset(c.config["dataset"], device_of(c));
    say(fmt::format("loaded {} ({} train, {} test) on {} in {:.2f} s", ds.name, ds.train_x.size(0), ds.test_x.size(0),
                    device_of(c).str(), ds.load_seconds));
    loaded.emplace(key, std::move(ds));
  }

  for (size_t i = 0; i < grid.cells.size(); ++i) {
    const Cell& c = grid.cells[i];
    const std::string prefix = fmt::format("[{}/{}] {}", i + 1, grid.cells.size(), c.label);
    if (auto r = done(c)) {
      ++summary.skipped;
      say(prefix + ": already " + r->status + ", skipped");
      continue;
    }
    const torch::Device device = device_of(c);
    storage::RunRecord rec;
    rec.cell_key = c.key;
    rec.grid = grid.name;
    rec.config_json = c.config.dump();
    rec.dataset = c.config["dataset"]["name"];
    rec.model = c.config["model"]["name"];
    rec.optimizer = c.config["optimizer"]["name"];
    rec.seed = c.config["seed"];
    rec.device = device.str();
    rec.htga_version = HTGA_VERSION;
    rec.torch_version = TORCH_VERSION;
    const int64_t run_id = store.begin_run(rec);
    const auto t0 = std::chrono::steady_clock::now();
    try {
      const auto& ds = loaded.at(c.config["dataset"].dump() + "@" + device.str());
      CellOutcome o = train_cell(c, ds, device, store, run_id, options.flush_every);
      const double secs = seconds_since(t0);
      store.finish_run(run_id, {o.status, o.error, o.test_acc, o.test_loss, o.train_acc, o.steps, secs});
      if (o.status == "diverged") {
        ++summary.diverged;
        say(fmt::format("{}: diverged ({}), {:.1f} s", prefix, o.error, secs));
      } else {
        ++summary.finished;
        say(fmt::format("{}: test acc {:.2f}% loss {:.4f}, {} steps, {:.1f} s", prefix, 100 * o.test_acc, o.test_loss,
                        o.steps, secs));
      }
    } catch (const std::exception& e) {
      std::string msg = e.what();
      msg = msg.substr(0, msg.find('\n'));  // c10 errors append a backtrace
      storage::RunResult failed;
      failed.status = "failed";
      failed.error = msg;
      failed.train_time_s = seconds_since(t0);
      store.finish_run(run_id, failed);
      ++summary.failed;
      say(prefix + ": FAILED: " + msg);
    }
  }
  return summary;
}

}  // namespace htga::experiments

#include "experiments/runner.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <torch/version.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <ostream>

#include "estimators/hill.h"
#include "estimators/noise.h"
#include "experiments/alpha_monitor.h"
#include "experiments/data/augment.h"
#include "experiments/error.h"
#include "experiments/models/zoo.h"
#include "optimizers/clip.h"
#include "optimizers/htga.h"
#include "optimizers/schedule.h"
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

models::InputShape input_shape(const data::Dataset& d) {
  return {d.train_x.size(1), d.train_x.size(2), d.train_x.size(3), d.num_classes};
}

/// The base optimizer a config names: sgd, sgd-clip and htga update by SGD, momentum by SGD
/// with momentum, adam and adamw by Adam.
std::unique_ptr<optimizers::Optimizer> make_optimizer(const json& opt, const std::vector<torch::Tensor>& params) {
  const std::string name = opt.at("name").get<std::string>();
  const double wd = opt.value("weight_decay", 0.0);
  if (name == "adam" || name == "adamw") {
    optimizers::AdamOptions o;
    o.beta1 = opt.value("beta1", o.beta1);
    o.beta2 = opt.value("beta2", o.beta2);
    o.eps = opt.value("eps", o.eps);
    o.weight_decay = wd;
    o.decoupled = name == "adamw";
    return std::make_unique<optimizers::Adam>(params, o);
  }
  if (name == "htga") {
    // HTGA owns the rate; its base optimizer owns the update.
    json base = opt;
    base["name"] = opt.value("base", std::string("sgd"));
    return make_optimizer(base, params);
  }
  optimizers::SgdOptions o;
  o.weight_decay = wd;
  if (name == "momentum") {
    o.momentum = opt.value("momentum", 0.9);
    o.nesterov = opt.value("nesterov", false);
  }
  return std::make_unique<optimizers::Sgd>(params, o);
}

struct Evaluation {
  double loss = 0, acc = 0;
  double top5 = NAN;  // measured for 100 classes or more
};

/// Loss, top-1 and (for 100+ classes) top-5 accuracy in eval mode (batch norm uses its running
/// statistics), in chunks small enough for a ResNet's activations.
Evaluation evaluate(torch::nn::AnyModule& model, torch::nn::Module& module, const torch::Tensor& x,
                    const torch::Tensor& y, int64_t num_classes) {
  torch::NoGradGuard no_grad;
  module.eval();
  const int64_t n = x.size(0), chunk = 1024;
  const bool top5 = num_classes >= 100;
  auto loss_sum = torch::zeros({}, x.options().dtype(torch::kFloat64));
  auto correct = torch::zeros({}, x.options().dtype(torch::kInt64));
  auto correct5 = torch::zeros({}, x.options().dtype(torch::kInt64));
  for (int64_t i = 0; i < n; i += chunk) {
    const int64_t len = std::min(chunk, n - i);
    auto logits = model.forward(x.narrow(0, i, len));
    auto yy = y.narrow(0, i, len);
    loss_sum += torch::nn::functional::cross_entropy(
                    logits, yy, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                    .to(torch::kFloat64);
    correct += logits.argmax(1).eq(yy).sum();
    if (top5) correct5 += std::get<1>(logits.topk(5, 1)).eq(yy.unsqueeze(1)).any(1).sum();
  }
  module.train();
  auto all = torch::stack({loss_sum, correct.to(torch::kFloat64), correct5.to(torch::kFloat64)}).cpu();
  return {all[0].item<double>() / n, all[1].item<double>() / n, top5 ? all[2].item<double>() / n : NAN};
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
  const std::string opt_name = opt["name"].get<std::string>();

  torch::manual_seed(static_cast<uint64_t>(seed));
  auto model = models::make_model(cfg["model"], input_shape(d));
  auto& module = *model.ptr();
  module.to(device);
  const std::vector<torch::Tensor> params = module.parameters();

  auto base = make_optimizer(opt, params);
  auto& optimizer = *base;
  const double clip_norm = opt.value("clip_norm", 0.0);
  const double clip_value = opt.value("clip_value", 0.0);
  optimizers::ScheduleOptions schedule;
  schedule.kind = train.value("schedule", schedule.kind);
  schedule.warmup_steps = train.value("lr_warmup_steps", schedule.warmup_steps);
  schedule.step_every = train.value("lr_step_every", schedule.step_every);
  schedule.gamma = train.value("lr_gamma", schedule.gamma);
  schedule.total_steps = epochs * ((d.train_x.size(0) + batch - 1) / batch);
  std::optional<optimizers::HtgaController> controller;
  if (opt_name == "htga") {
    optimizers::HtgaOptions o(opt["lr"].get<double>());
    o.alpha0 = opt["alpha0"].get<double>();
    o.beta = opt["beta"].get<double>();
    o.lr_min = opt["lr_min"].is_null() ? 0.0 : opt["lr_min"].get<double>();
    o.lr_max = opt["lr_max"].is_null() ? 0.0 : opt["lr_max"].get<double>();
    o.alpha_ema = opt["alpha_ema"].get<double>();
    o.warmup_steps = opt["warmup_steps"].get<int64_t>();
    o.max_lr_change = opt.value("max_lr_change", 0.0);
    o.alpha0_explore = opt.value("alpha0_explore", 0.0);
    o.plateau_tol = opt.value("plateau_tol", o.plateau_tol);
    o.plateau_patience = opt.value("plateau_patience", o.plateau_patience);
    o.alpha0_final = opt.value("alpha0_final", 0.0);
    o.final_fraction = opt.value("final_fraction", o.final_fraction);
    const int64_t n_train = d.train_x.size(0);
    o.total_steps = epochs * ((n_train + batch - 1) / batch);
    try {
      const bool per_layer = train.value("scope", std::string("global")) == "layer";
      controller.emplace(o, device, per_layer ? static_cast<int64_t>(params.size()) : 1);
    } catch (const std::invalid_argument& e) {
      throw InputError(cell.label + ": " + e.what());
    }
  }
  // Gradients live in one flat buffer, so the estimator reads them without a copy.
  auto flat_grad = estimators::bind_flat_gradients(params);
  const auto alpha_settings = AlphaSettings::from_config(train);
  AlphaMonitor monitor(alpha_settings, params, flat_grad, static_cast<uint64_t>(seed));
  if (alpha_settings.scope == "layer") {
    std::vector<storage::LayerInfo> layers;
    for (const auto& item : module.named_parameters())
      layers.push_back({static_cast<int64_t>(layers.size()), item.key(), item.value().numel()});
    store.set_layers(run_id, layers);
  }

  auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  const auto nan = torch::full({}, std::numeric_limits<float>::quiet_NaN(), f32);
  constexpr int64_t kStats = 8;  // loss, acc, lr, alpha_hat, grad_norm, alpha_smooth, phase, clip_coef
  const auto const_lr = torch::full({}, opt["lr"].get<double>(), f32);
  // Batch order has its own generator so that nothing else (the estimator included) can shift it.
  auto order_gen = at::detail::createCPUGenerator(static_cast<uint64_t>(seed));
  auto augment_gen = at::detail::createCPUGenerator(static_cast<uint64_t>(seed) ^ 0x5bd1e995ULL);

  const int64_t n = d.train_x.size(0);
  int64_t step = 0;
  std::vector<torch::Tensor> pending;  // per-step statistics (kStats of them) on the device
  std::vector<int64_t> pending_epoch;
  std::vector<storage::StepRow> rows;
  std::vector<std::pair<int64_t, torch::Tensor>> pending_layers;  // (step, per-layer alpha_hat)
  CellOutcome out;

  // The probe noise source: fresh minibatches at the current weights, from a generator of its
  // own (the training order is untouched); batch-norm statistics are restored afterwards.
  auto probe_gen = at::detail::createCPUGenerator(static_cast<uint64_t>(seed) ^ 0x9e3779b97f4a7c15ULL);
  std::vector<torch::Tensor> saved_buffers;
  auto probe = [&] {
    if (saved_buffers.empty())
      for (const auto& b : module.buffers()) saved_buffers.push_back(b.clone());
    auto idx =
        torch::randint(n, {std::min(batch, n)}, probe_gen, torch::TensorOptions().dtype(torch::kInt64)).to(device);
    optimizer.zero_grad();
    torch::nn::functional::cross_entropy(model.forward(d.train_x.index_select(0, idx)), d.train_y.index_select(0, idx))
        .backward();
  };
  auto restore_buffers = [&] {
    if (saved_buffers.empty()) return;
    auto buffers = module.buffers();
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < buffers.size(); ++i) buffers[i].copy_(saved_buffers[i]);
    saved_buffers.clear();
  };

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
      const double* r = v + kStats * i;
      rows.push_back(
          {first + static_cast<int64_t>(i), pending_epoch[i], r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]});
      if (!std::isfinite(r[0])) {
        ok = false;
        out.status = "diverged";
        out.error = fmt::format("loss is {} at step {}", r[0], first + static_cast<int64_t>(i));
        out.steps = first + static_cast<int64_t>(i) + 1;  // the steps stored; later ones are dropped
        break;
      }
    }
    store.append_steps(run_id, rows);
    if (!pending_layers.empty()) {
      std::vector<torch::Tensor> stacked;
      for (const auto& [s, t] : pending_layers) stacked.push_back(t);
      auto layer_host = torch::stack(stacked).to(torch::kCPU, torch::kFloat64).contiguous();
      const double* lv = layer_host.data_ptr<double>();
      const int64_t per = layer_host.size(1);
      std::vector<storage::LayerAlphaRow> layer_rows;
      for (size_t i = 0; i < pending_layers.size(); ++i)
        for (int64_t l = 0; l < per; ++l) layer_rows.push_back({pending_layers[i].first, l, lv[i * per + l]});
      store.append_layer_alphas(run_id, layer_rows);
      pending_layers.clear();
    }
    pending.clear();
    pending_epoch.clear();
    return ok;
  };

  for (int64_t epoch = 0; epoch < epochs; ++epoch) {
    auto perm = torch::randperm(n, order_gen, torch::TensorOptions().dtype(torch::kInt64)).to(device);
    for (int64_t start = 0; start < n; start += batch) {
      const int64_t len = std::min(batch, n - start);
      auto idx = perm.narrow(0, start, len);
      auto x = data::augment_batch(d.train_x.index_select(0, idx), d.augment, augment_gen);
      auto y = d.train_y.index_select(0, idx);

      optimizer.zero_grad();
      auto logits = model.forward(x);
      auto loss = torch::nn::functional::cross_entropy(logits, y);
      loss.backward();

      // alpha_hat of the gradient noise, on the raw (unclipped) gradient.
      auto estimate = monitor.observe(step, probe);
      restore_buffers();
      const torch::Tensor& alpha = estimate.alpha;
      if (estimate.layers.defined()) pending_layers.push_back({step, estimate.layers});
      torch::Tensor lr = const_lr;
      if (controller && controller->smoothed_alpha().dim() == 1) {
        // Layer scope: one rate per parameter tensor from its own alpha_hat.
        auto per = estimate.layers.defined() ? estimate.layers : nan.expand({controller->smoothed_alpha().numel()});
        lr = controller->update(per, step, loss.detach());
      } else if (controller) {
        lr = controller->update(alpha, step, loss.detach());
      }
      if (schedule.kind != "constant" || schedule.warmup_steps > 0)
        lr = lr * optimizers::schedule_factor(schedule, step);
      if (clip_value > 0) optimizers::clip_grad_value(params, clip_value);
      auto clip = optimizers::clip_grad_norm(params, clip_norm);
      optimizer.step(lr);

      auto acc = logits.detach().argmax(1).eq(y).sum().to(torch::kFloat32) / static_cast<double>(len);
      // Layer scope logs the median rate and the median smoothed alpha.
      const auto& a_smooth = controller ? controller->smoothed_alpha() : nan;
      const auto smooth = a_smooth.dim() == 0 ? a_smooth : a_smooth.nanmedian();
      const auto& phase = controller ? controller->phase() : nan;
      const auto lr_log = lr.dim() == 0 ? lr : lr.median();
      pending.push_back(
          torch::stack({loss.detach().to(torch::kFloat32), acc, lr_log, alpha, clip.total_norm.to(torch::kFloat32),
                        smooth, phase, clip.coef.to(torch::kFloat32)}));
      pending_epoch.push_back(epoch);
      ++step;
      if (static_cast<int64_t>(pending.size()) >= flush_every && !flush()) return out;
    }
    if (!flush()) return out;
    const bool last = epoch + 1 == epochs;
    if (d.val_x.size(0) > 0) {
      auto val = evaluate(model, module, d.val_x, d.val_y, d.num_classes);
      store.add_eval(run_id, {epoch, step, "val", val.loss, val.acc, val.top5, last});
    }
    auto ev = evaluate(model, module, d.test_x, d.test_y, d.num_classes);
    store.add_eval(run_id, {epoch, step, "test", ev.loss, ev.acc, ev.top5, last});
    out.test_acc = ev.acc;
    out.test_loss = ev.loss;
    if (last) {  // accuracy on the whole training set, for the generalization gap
      auto tr = evaluate(model, module, d.train_x, d.train_y, d.num_classes);
      store.add_eval(run_id, {epoch, step, "train", tr.loss, tr.acc, tr.top5, true});
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
  data::LoadOptions load_options;  // decoded datasets cached beside the database
  load_options.cache_dir = (fs::absolute(options.db_path).parent_path() / "htga-data-cache").string();
  for (const Cell& c : grid.cells) {
    const std::string key = c.config["dataset"].dump() + "@" + device_of(c).str();
    if (loaded.count(key) || done(c)) continue;
    auto ds = data::load_dataset(c.config["dataset"], device_of(c), load_options);
    say(fmt::format("loaded {} ({} train, {} val, {} test) on {} in {:.2f} s; cache {}", ds.name, ds.train_x.size(0),
                    ds.val_x.size(0), ds.test_x.size(0), device_of(c).str(), ds.load_seconds, ds.cache_note));
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

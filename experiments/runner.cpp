#include "experiments/runner.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <signal.h>
#include <torch/version.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <thread>

#include "estimators/hill.h"
#include "estimators/noise.h"
#include "experiments/alpha_monitor.h"
#include "experiments/data/augment.h"
#include "experiments/error.h"
#include "experiments/models/zoo.h"
#include "experiments/task.h"
#include "experiments/torch_compat.h"
#include "htga_git_commit.h"
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

using Clock = std::chrono::steady_clock;
double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

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
  if (d.task == "classify") return {d.train_x.size(1), d.train_x.size(2), d.train_x.size(3), d.num_classes};
  models::InputShape in;
  in.num_classes = d.num_classes;
  in.task = d.task;
  in.vocab_size = d.vocab_size;
  in.max_len = d.max_len;
  return in;
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

}  // namespace

namespace {

std::atomic<int> g_stop{0};

extern "C" void on_signal(int) {
  if (g_stop.fetch_add(1) >= 1) _exit(130);  // the second signal: leave at once
  const char msg[] = "\nhtga: stopping after the current step (again to quit at once)\n";
  [[maybe_unused]] auto n = write(2, msg, sizeof msg - 1);
}

void write_list(torch::serialize::OutputArchive& ar, const std::string& prefix, const std::vector<torch::Tensor>& v) {
  ar.write(prefix + ".n", torch::tensor(static_cast<int64_t>(v.size())));
  for (size_t i = 0; i < v.size(); ++i) ar.write(prefix + "." + std::to_string(i), v[i]);
}

std::vector<torch::Tensor> read_list(torch::serialize::InputArchive& ar, const std::string& prefix) {
  torch::Tensor n;
  ar.read(prefix + ".n", n);
  std::vector<torch::Tensor> v(static_cast<size_t>(n.item<int64_t>()));
  for (size_t i = 0; i < v.size(); ++i) ar.read(prefix + "." + std::to_string(i), v[i]);
  return v;
}

/// Everything that makes a resumed run continue exactly where it stopped.
struct TrainState {
  torch::nn::Module* module = nullptr;
  optimizers::Optimizer* optimizer = nullptr;
  optimizers::HtgaController* controller = nullptr;
  AlphaMonitor* monitor = nullptr;
  std::vector<std::pair<std::string, at::Generator*>> generators;
};

void save_checkpoint(const std::string& file, const TrainState& s, int64_t epoch, int64_t step) {
  namespace fs = std::filesystem;
  torch::serialize::OutputArchive ar;
  for (const auto& p : s.module->named_parameters()) ar.write("model." + p.key(), p.value().detach());
  for (const auto& b : s.module->named_buffers()) ar.write("buffer." + b.key(), b.value());
  write_list(ar, "opt", s.optimizer->state());
  if (s.controller) write_list(ar, "ctrl", s.controller->state());
  ar.write("ema", s.monitor->state());
  for (const auto& [name, gen] : s.generators) {
    std::lock_guard<std::mutex> lock(gen->mutex());
    ar.write("gen." + name, gen->get_state());
  }
  ar.write("meta", torch::tensor({epoch, step}, torch::kInt64));
  fs::create_directories(fs::path(file).parent_path());
  const std::string tmp = file + ".tmp";
  ar.save_to(tmp);
  fs::rename(tmp, file);  // atomic: a reader sees the old file or the whole new one
}

void load_checkpoint(const std::string& file, const TrainState& s, const torch::Device& device, int64_t epoch,
                     int64_t step) {
  torch::serialize::InputArchive ar;
  ar.load_from(file, device);
  torch::Tensor meta;
  ar.read("meta", meta);
  if (meta[0].item<int64_t>() != epoch || meta[1].item<int64_t>() != step)
    throw std::runtime_error(file + ": checkpoint is of epoch " + std::to_string(meta[0].item<int64_t>()) +
                             ", the database expects " + std::to_string(epoch));
  torch::NoGradGuard no_grad;
  for (const auto& p : s.module->named_parameters()) {
    torch::Tensor t;
    ar.read("model." + p.key(), t);
    p.value().copy_(t);
  }
  for (const auto& b : s.module->named_buffers()) {
    torch::Tensor t;
    ar.read("buffer." + b.key(), t);
    b.value().copy_(t);
  }
  s.optimizer->load_state(read_list(ar, "opt"));
  if (s.controller) s.controller->load_state(read_list(ar, "ctrl"));
  torch::Tensor ema;
  ar.read("ema", ema);
  s.monitor->load_state(ema);
  for (const auto& [name, gen] : s.generators) {
    torch::Tensor t;
    if (name == "cuda" && !ar.try_read("gen." + name, t)) continue;  // a checkpoint from before it was saved
    if (!t.defined()) ar.read("gen." + name, t);
    std::lock_guard<std::mutex> lock(gen->mutex());
    gen->set_state(t.cpu());
  }
}

/// Model construction draws from the global generator: one cell at a time.
std::mutex g_init_mutex;

}  // namespace

void request_stop() { g_stop.fetch_add(1); }
bool stop_requested() { return g_stop.load(std::memory_order_relaxed) > 0; }
void reset_stop() { g_stop.store(0); }

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

CellOutcome train_cell(const Cell& cell, const data::Dataset& d, const torch::Device& device, const CellContext& ctx) {
  storage::Writer& writer = *ctx.writer;
  const int64_t run_id = ctx.run_id, flush_every = ctx.flush_every;
  const json& cfg = cell.config;
  const json& opt = cfg["optimizer"];
  const json& train = cfg["train"];
  const auto seed = cfg["seed"].get<int64_t>();
  const auto epochs = train["epochs"].get<int64_t>();
  const auto batch = train["batch_size"].get<int64_t>();
  const std::string opt_name = opt["name"].get<std::string>();

  std::unique_lock<std::mutex> init_lock(g_init_mutex);
  torch::manual_seed(static_cast<uint64_t>(seed));
  auto model = models::make_model(cfg["model"], input_shape(d));
  Task task(d);
  task.set_train_eval_size(train.value("train_eval_size", int64_t{10000}));
  const bool amp = train.value("amp", std::string("none")) == "bf16";
  task.set_amp(amp);
  init_lock.unlock();
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
    writer.post([run_id, layers](storage::Store& s) { s.set_layers(run_id, layers); });
  }

  auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  const auto nan = torch::full({}, std::numeric_limits<float>::quiet_NaN(), f32);
  constexpr int64_t kStats = 8;  // loss, acc, lr, alpha_hat, grad_norm, alpha_smooth, phase, clip_coef
  const auto const_lr = torch::full({}, opt["lr"].get<double>(), f32);
  // Batch order has its own generator so that nothing else (the estimator included) can shift it.
  auto order_gen = at::detail::createCPUGenerator(static_cast<uint64_t>(seed));
  auto augment_gen = at::detail::createCPUGenerator(static_cast<uint64_t>(seed) ^ 0x5bd1e995ULL);

  const int64_t n = d.train_x.size(0);
  int64_t step = 0, first_epoch = 0;
  // Per-step statistics on the device, kStats 0-dim tensors per step, stacked only at a flush (one
  // operation for all of them rather than one per step).
  std::vector<torch::Tensor> pending;
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
    const auto b = task.batch(idx, /*augment_gen=*/nullptr);
    torch::Tensor loss;
    {
      compat::Autocast autocast(device, amp);
      loss = task.loss(model.forward(b.x), b.y);
    }
    loss.backward();
  };
  auto restore_buffers = [&] {
    if (saved_buffers.empty()) return;
    auto buffers = module.buffers();
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < buffers.size(); ++i) buffers[i].copy_(saved_buffers[i]);
    saved_buffers.clear();
  };

  TrainState state{&module,
                   &optimizer,
                   controller ? &*controller : nullptr,
                   &monitor,
                   {{"order", &order_gen}, {"augment", &augment_gen}, {"probe", &probe_gen}}};
  // Dropout draws from the global generator; its state is saved too (exact with --jobs 1).
  at::Generator global_gen = at::detail::getDefaultCPUGenerator();
  state.generators.push_back({"global", &global_gen});
  // On a GPU, dropout draws from the device's generator.
  at::Generator cuda_gen;
  if (device.is_cuda()) {
    cuda_gen = at::globalContext().defaultGenerator(device);
    state.generators.push_back({"cuda", &cuda_gen});
  }
  if (ctx.claim.resumed) {
    load_checkpoint(ctx.claim.checkpoint, state, device, ctx.claim.from_epoch - 1, ctx.claim.from_step);
    first_epoch = ctx.claim.from_epoch;
    step = ctx.claim.from_step;
  }
  std::string last_checkpoint = ctx.claim.resumed ? ctx.claim.checkpoint : "";
  auto last_flush = std::chrono::steady_clock::now();

  // Moves buffered statistics to the host in one copy and writes them; returns false at a
  // non-finite loss (rows up to that step are kept). Checking only here keeps the loop free of
  // host synchronisation; a diverged run trains at most flush_every steps past its NaN.
  auto flush = [&]() -> bool {
    if (pending.empty()) return true;
    auto host = torch::stack(pending).to(torch::kCPU, torch::kFloat64).contiguous();
    const double* v = host.data_ptr<double>();
    const auto count = static_cast<int64_t>(pending_epoch.size());
    const int64_t first = step - count;
    rows.clear();
    bool ok = true;
    for (int64_t i = 0; i < count; ++i) {
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
    if (ctx.on_flush && !rows.empty())
      ctx.on_flush(step, pending_epoch.back(), rows.back().loss, rows.back().alpha_hat);
    writer.post([run_id, rows = std::move(rows)](storage::Store& s) {
      s.append_steps(run_id, rows);
      s.heartbeat(run_id);
    });
    rows = {};
    last_flush = std::chrono::steady_clock::now();
    if (!pending_layers.empty()) {
      std::vector<torch::Tensor> stacked;
      for (const auto& [s, t] : pending_layers) stacked.push_back(t);
      auto layer_host = torch::stack(stacked).to(torch::kCPU, torch::kFloat64).contiguous();
      const double* lv = layer_host.data_ptr<double>();
      const int64_t per = layer_host.size(1);
      std::vector<storage::LayerAlphaRow> layer_rows;
      for (size_t i = 0; i < pending_layers.size(); ++i)
        for (int64_t l = 0; l < per; ++l) layer_rows.push_back({pending_layers[i].first, l, lv[i * per + l]});
      writer.post([run_id, layer_rows = std::move(layer_rows)](storage::Store& s) {
        s.append_layer_alphas(run_id, layer_rows);
      });
      pending_layers.clear();
    }
    pending.clear();
    pending_epoch.clear();
    return ok;
  };

  for (int64_t epoch = first_epoch; epoch < epochs; ++epoch) {
    auto perm = torch::randperm(n, order_gen, torch::TensorOptions().dtype(torch::kInt64)).to(device);
    for (int64_t start = 0; start < n; start += batch) {
      const auto t_step = Clock::now();
      const int64_t len = std::min(batch, n - start);
      auto idx = perm.narrow(0, start, len);
      auto [x, y] = task.batch(idx, &augment_gen);

      optimizer.zero_grad();
      torch::Tensor logits, loss;
      {
        compat::Autocast autocast(device, amp);  // the forward pass only; backward follows its casts
        logits = model.forward(x);
        loss = task.loss(logits, y);
      }
      loss.backward();

      // alpha_hat of the gradient noise, on the raw (unclipped) gradient.
      const auto t_alpha = Clock::now();
      auto estimate = monitor.observe(step, probe);
      restore_buffers();
      out.time.alpha_s += seconds_between(t_alpha, Clock::now());
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

      const auto t_log = Clock::now();
      auto acc = task.accuracy(logits.detach(), y);
      // Layer scope logs the median rate and the median smoothed alpha.
      const auto& a_smooth = controller ? controller->smoothed_alpha() : nan;
      const auto smooth = a_smooth.dim() == 0 ? a_smooth : a_smooth.nanmedian();
      const auto& phase = controller ? controller->phase() : nan;
      const auto lr_log = lr.dim() == 0 ? lr : lr.median();
      for (const torch::Tensor& t : {loss.detach(), acc, lr_log, alpha, clip.total_norm, smooth, phase, clip.coef})
        pending.push_back(t.scalar_type() == torch::kFloat32 ? t : t.to(torch::kFloat32));
      pending_epoch.push_back(epoch);
      ++step;
      const bool interrupted = stop_requested();
      if (static_cast<int64_t>(pending_epoch.size()) >= flush_every || interrupted ||
          ((step & 7) == 0 && seconds_since(last_flush) >= ctx.flush_seconds))
        if (!flush()) return out;
      const auto t_end = Clock::now();
      out.time.log_s += seconds_between(t_log, t_end);
      out.time.step_s += seconds_between(t_step, t_end);
      ++out.time.steps;
      if (interrupted) {
        out.status = "interrupted";
        out.steps = step;
        out.error = fmt::format("interrupted at step {} (epoch {}); resumes from {}", step, epoch,
                                last_checkpoint.empty() ? std::string("the start") : last_checkpoint);
        return out;
      }
    }
    if (!flush()) return out;
    const bool last = epoch + 1 == epochs;
    auto post = [&](const std::string& split, const Evaluation& ev, bool final) {
      writer.post([run_id, row = storage::EvalRow{epoch, step, split, ev.loss, ev.acc, ev.top5, final}](
                      storage::Store& s) { s.add_eval(run_id, row); });
      if (ev.metrics.empty()) return;
      std::vector<storage::MetricRow> rows;
      for (const auto& [name, value] : ev.metrics) rows.push_back({epoch, split, name, value});
      writer.post([run_id, rows](storage::Store& s) { s.add_metrics(run_id, rows); });
    };
    const auto t_eval = Clock::now();
    for (const std::string& split : task.eval_splits()) {
      const Evaluation ev = task.evaluate(model, module, split);
      post(split, ev, last);
      if (split == "val") {
        out.val_acc = ev.acc;
        out.val_metric = ev.main;
      } else if (split == "test") {
        out.test_acc = ev.acc;
        out.test_loss = ev.loss;
        out.test_metric = ev.main;
      }
    }
    if (last) {  // on the whole training set, for the generalization gap
      const Evaluation tr = task.evaluate(model, module, "train");
      post("train", tr, true);
      out.train_acc = tr.acc;
    }
    out.time.eval_s += seconds_between(t_eval, Clock::now());
    const int64_t every = train.value("checkpoint_every", int64_t{1});
    if (!last && every > 0 && (epoch + 1) % every == 0 && !ctx.checkpoint_dir.empty()) {
      // A new file per epoch: the database names the old one until it commits the new one.
      const std::string file =
          (std::filesystem::path(ctx.checkpoint_dir) / fmt::format("{}-e{}.pt", cell.key, epoch)).string();
      save_checkpoint(file, state, epoch, step);
      writer.post([run_id, file, epoch, step, old = last_checkpoint](storage::Store& s) {
        s.set_checkpoint(run_id, file, epoch, step);
        std::error_code ec;
        if (!old.empty() && old != file) std::filesystem::remove(old, ec);
      });
      last_checkpoint = file;
    }
  }
  out.status = "finished";
  out.steps = step;
  if (device.is_cuda() && alpha_settings.every > 0) {
    if (monitor.graphed())
      out.time.note = "alpha_hat as a CUDA graph";
    else if (!monitor.graph_failure().empty())
      out.time.note = "alpha_hat eager (CUDA graph capture failed: " + monitor.graph_failure() + ")";
  }
  return out;
}

namespace {

std::string host_name() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

/// What the live display shows of a cell in training.
struct Active {
  std::string label;
  int64_t index = 0;
  int64_t run_id = 0;
  int64_t step = 0, total_steps = 0, epoch = 0, epochs = 0;
  double loss = NAN, alpha = NAN;
  std::chrono::steady_clock::time_point started;
  int64_t first_step = 0;  // steps done before this process took the cell (resumed)
};

int64_t steps_per_epoch(const Cell& c, const data::Dataset& d) {
  const auto batch = c.config["train"]["batch_size"].get<int64_t>();
  return (d.train_x.size(0) + batch - 1) / batch;
}

std::string format_eta(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  if (s < 90) return fmt::format("{:.0f}s", s);
  if (s < 5400) return fmt::format("{:.0f}m", s / 60);
  return fmt::format("{:.1f}h", s / 3600);
}

}  // namespace

RunSummary run_grid(const RunOptions& options, std::ostream& progress) {
  namespace fs = std::filesystem;
  // Everything that can be checked is checked before the database is touched.
  Grid grid = load_grid(options.grid_path);
  check_cells(grid);
  if (options.shard_count < 1 || options.shard_index < 0 || options.shard_index >= options.shard_count)
    throw InputError(fmt::format("--shard {}/{}: want I/N with 0 <= I < N", options.shard_index, options.shard_count));
  if (options.jobs < 1) throw InputError(fmt::format("--jobs {}: want 1 or more", options.jobs));
  if (static_cast<int64_t>(grid.cells.size()) > options.max_cells && !options.yes && !options.dry_run)
    throw InputError(fmt::format("{}: {} cells, more than --max-cells {}; pass --yes to run them all",
                                 options.grid_path, grid.cells.size(), options.max_cells));
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
  std::vector<size_t> mine;  // this shard's cells, by index in the grid
  for (size_t i = 0; i < grid.cells.size(); ++i)
    if (static_cast<int>(i % static_cast<size_t>(options.shard_count)) == options.shard_index) mine.push_back(i);
  summary.selected = static_cast<int>(mine.size());

  std::mutex out_mu;  // progress lines and the summary, from several threads
  auto say = [&](const std::string& line) {
    if (options.quiet) return;
    std::lock_guard<std::mutex> lock(out_mu);
    if (options.live) progress << "\x1b[2K";  // over whatever the live display left there
    progress << line << std::endl;
  };

  if (options.dry_run) {
    std::optional<storage::Store> store;
    if (fs::exists(options.db_path)) store.emplace(options.db_path);
    for (size_t i : mine) {
      const Cell& c = grid.cells[i];
      std::string state = "new";
      if (store)
        if (auto r = store->find_run(c.key)) {
          state = r->status;
          if (r->checkpoint_epoch >= 0 && state != "finished")
            state += fmt::format(", checkpoint after epoch {}", r->checkpoint_epoch + 1);
        }
      if (state == "finished" || state == "diverged") ++summary.skipped;
      progress << fmt::format("[{}/{}] {} {} ({})", i + 1, grid.cells.size(), c.key, c.label, state) << std::endl;
    }
    return summary;
  }

  // The database opens first, so that a bad --db fails fast; datasets load next, once, before any
  // run row is written: a damaged data file stops the grid with nothing stored.
  storage::Writer writer(std::make_unique<storage::Store>(options.db_path));
  const fs::path db_dir = fs::absolute(options.db_path).parent_path();
  const std::string checkpoint_dir =
      options.checkpoint_dir.empty() ? (db_dir / "checkpoints").string() : options.checkpoint_dir;
  // A diverged run is a result (the same seed diverges again), not a failure to retry.
  auto done = [&](const Cell& c) {
    auto r = writer.call([&](storage::Store& s) { return s.find_run(c.key); });
    return r && (r->status == "finished" || r->status == "diverged") ? r : std::nullopt;
  };
  std::vector<size_t> todo;
  for (size_t i : mine) {
    const Cell& c = grid.cells[i];
    if (auto r = done(c)) {
      ++summary.skipped;
      say(fmt::format("[{}/{}] {}: already {}, skipped", i + 1, grid.cells.size(), c.label, r->status));
    } else {
      todo.push_back(i);
    }
  }
  std::map<std::string, data::Dataset> loaded;
  data::LoadOptions load_options;  // decoded datasets cached beside the database
  load_options.cache_dir = (db_dir / "htga-data-cache").string();
  auto data_key = [&](const Cell& c) { return c.config["dataset"].dump() + "@" + device_of(c).str(); };
  for (size_t i : todo) {
    const Cell& c = grid.cells[i];
    if (loaded.count(data_key(c)) || stop_requested()) continue;
    auto ds = data::load_dataset(c.config["dataset"], device_of(c), load_options);
    say(fmt::format("loaded {} ({} train, {} val, {} test) on {} in {:.2f} s; cache {}", ds.name, ds.train_x.size(0),
                    ds.val_x.size(0), ds.test_x.size(0), device_of(c).str(), ds.load_seconds, ds.cache_note));
    loaded.emplace(data_key(c), std::move(ds));
  }
  // Cells train on streams of their own (compat::ThreadStream): the uploads finish first.
  for (const auto& [name, device] : devices) compat::synchronize(device);

  const std::string host = host_name();
  const int64_t pid = getpid();
  const int jobs = std::min<int>(options.jobs, std::max<size_t>(todo.size(), 1));
  // Intra-op threads divided among the cells (per thread: OpenMP's setting is per thread).
  const int threads_per_job = std::max(1, at::get_num_threads() / jobs);

  std::mutex active_mu;
  std::map<size_t, Active> active;  // by grid index
  std::atomic<size_t> next{0};
  std::atomic<int> grid_steps_done{0};

  auto run_one = [&](size_t i) {
    const Cell& c = grid.cells[i];
    const std::string prefix = fmt::format("[{}/{}] {}", i + 1, grid.cells.size(), c.label);
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
    rec.git_commit = HTGA_GIT_COMMIT;
    rec.host = host;
    rec.pid = pid;
    const auto& ds = loaded.at(data_key(c));
    rec.metric = ds.metric;
    // A record of this host whose process is gone (killed) is taken over without waiting for
    // its heartbeat to go stale.
    auto alive = [&](const storage::RunRecord& r) {
      return r.host != host || r.pid <= 0 ||
             (r.pid != pid && (kill(static_cast<pid_t>(r.pid), 0) == 0 || errno != ESRCH));
    };
    const auto claim =
        writer.call([&](storage::Store& s) { return s.claim_run(rec, options.stale_after_s, /*resume=*/true, alive); });
    if (claim.run_id == 0) {
      std::lock_guard<std::mutex> lock(out_mu);
      ++summary.busy;
      if (!options.quiet)
        progress << prefix << ": running in another process (fresh heartbeat), left to it" << std::endl;
      return;
    }
    if (claim.resumed) {
      say(fmt::format("{}: resuming after epoch {} (step {})", prefix, claim.from_epoch, claim.from_step));
      std::lock_guard<std::mutex> lock(out_mu);
      ++summary.resumed;
    }
    {
      std::lock_guard<std::mutex> lock(active_mu);
      Active a;
      a.label = prefix;
      a.index = static_cast<int64_t>(i);
      a.run_id = claim.run_id;
      a.epochs = c.config["train"]["epochs"].get<int64_t>();
      a.total_steps = a.epochs * steps_per_epoch(c, ds);
      a.step = a.first_step = claim.from_step;
      a.epoch = claim.from_epoch;
      a.started = std::chrono::steady_clock::now();
      active[i] = a;
    }
    CellContext ctx;
    ctx.writer = &writer;
    ctx.run_id = claim.run_id;
    ctx.flush_every = options.flush_every;
    ctx.flush_seconds = options.flush_seconds;
    ctx.claim = claim;
    ctx.checkpoint_dir = checkpoint_dir;
    ctx.on_flush = [&, i](int64_t step, int64_t epoch, double loss, double alpha) {
      std::lock_guard<std::mutex> lock(active_mu);
      auto& a = active[i];
      a.step = step;
      a.epoch = epoch;
      a.loss = loss;
      a.alpha = alpha;
    };
    const auto t0 = std::chrono::steady_clock::now();
    storage::RunResult result;
    CellOutcome::Timing timing;
    try {
      compat::ThreadStream stream(device);  // cells side by side on one GPU overlap
      CellOutcome o = train_cell(c, ds, device, ctx);
      timing = o.time;
      result = {};
      result.status = o.status;
      result.error = o.error;
      result.test_acc = o.test_acc;
      result.test_loss = o.test_loss;
      result.train_acc = o.train_acc;
      result.steps = o.steps;
      result.train_time_s = seconds_since(t0);
      result.metric = ds.metric;
      result.val_metric = o.val_metric;
      result.test_metric = o.test_metric;
      writer.call([&](storage::Store& s) { s.finish_run(claim.run_id, result); });
      if (o.status == "finished" || o.status == "diverged") {
        // The checkpoint has served its purpose; a finished run's result is in the database.
        auto r = writer.call([&](storage::Store& s) { return s.run(claim.run_id); });
        std::error_code ec;
        if (r && !r->checkpoint.empty()) fs::remove(r->checkpoint, ec);
      }
      std::lock_guard<std::mutex> lock(out_mu);
      if (o.status == "diverged") ++summary.diverged;
      if (o.status == "finished") ++summary.finished;
      if (o.status == "interrupted") ++summary.interrupted;
    } catch (const std::exception& e) {
      std::string msg = e.what();
      msg = msg.substr(0, msg.find('\n'));  // c10 errors append a backtrace
      result = {};
      result.status = "failed";
      result.error = msg;
      result.train_time_s = seconds_since(t0);
      try {
        writer.sync();  // a failed write is the error worth reporting
      } catch (const std::exception& w) {
        result.error = std::string("writing results: ") + w.what();
      }
      try {
        writer.call([&](storage::Store& s) { s.finish_run(claim.run_id, result); });
      } catch (const std::exception&) {
        // The database itself fails (disk full, removed): the run stays `running` and is taken
        // over once its heartbeat is stale; the message below says why.
      }
      std::lock_guard<std::mutex> lock(out_mu);
      ++summary.failed;
    }
    {
      std::lock_guard<std::mutex> lock(active_mu);
      active.erase(i);
    }
    grid_steps_done += 1;
    if (result.status == "diverged")
      say(fmt::format("{}: diverged ({}), {:.1f} s", prefix, result.error, result.train_time_s));
    else if (result.status == "finished")
      say(fmt::format(
          "{}: {}test acc {:.2f}% loss {:.4f}, {} steps, {:.1f} s{}", prefix,
          result.metric == "acc" ? std::string() : fmt::format("test {} {:.4g}, ", result.metric, result.test_metric),
          100 * result.test_acc, result.test_loss, result.steps, result.train_time_s,
          (timing.steps == 0 ? std::string()
                             : fmt::format("; {:.3f} ms/step, alpha_hat {:.1f}%, logging {:.1f}%; evaluation {:.2f} s",
                                           1e3 * timing.step_s / timing.steps, 100 * timing.alpha_s / timing.step_s,
                                           100 * timing.log_s / timing.step_s, timing.eval_s)) +
              (timing.note.empty() ? std::string() : "; " + timing.note)));
    else if (result.status == "interrupted")
      say(fmt::format("{}: {}", prefix, result.error));
    else
      say(prefix + ": FAILED: " + result.error);
  };

  // Heartbeats for the cells in training, and the live display.
  std::atomic<bool> ticking{true};
  std::mutex tick_mu;
  std::condition_variable tick_cv;
  size_t drawn = 0;  // lines of live display on screen
  auto draw = [&](bool final) {
    std::lock_guard<std::mutex> lock(out_mu);
    std::lock_guard<std::mutex> alock(active_mu);
    std::string text;
    if (drawn > 0) text += fmt::format("\x1b[{}A", drawn);
    size_t lines = 0;
    if (!final) {
      for (const auto& [i, a] : active) {
        const double secs = seconds_since(a.started);
        const double rate = secs > 0 ? static_cast<double>(a.step - a.first_step) / secs : 0;
        const double frac = a.total_steps > 0 ? static_cast<double>(a.step) / static_cast<double>(a.total_steps) : 0;
        const int width = 20, fill = static_cast<int>(frac * width);
        text += fmt::format("\x1b[2K{} [{}{}] step {}/{} epoch {}/{} loss {:.4f} alpha {:.3f} {:.0f} steps/s ETA {}\n",
                            a.label, std::string(fill, '#'), std::string(width - fill, '.'), a.step, a.total_steps,
                            a.epoch + 1, a.epochs, a.loss, a.alpha, rate,
                            format_eta(rate > 0 ? (a.total_steps - a.step) / rate : NAN));
        ++lines;
      }
      text += fmt::format("\x1b[2Kgrid: {}/{} cells done, {} training, {} jobs\n",
                          static_cast<int>(grid_steps_done) + summary.skipped, mine.size(), active.size(), jobs);
      ++lines;
    }
    for (size_t k = lines; k < drawn; ++k) text += "\x1b[2K\n";  // clear what is left of the old one
    if (drawn > lines) text += fmt::format("\x1b[{}A", drawn - lines);
    progress << text << std::flush;
    drawn = lines;
  };
  std::thread ticker([&] {
    auto last_beat = std::chrono::steady_clock::now(), last_plain = last_beat;
    std::unique_lock<std::mutex> lock(tick_mu);
    while (ticking) {
      tick_cv.wait_for(lock, std::chrono::milliseconds(options.live ? 500 : 1000));
      if (!ticking) break;
      if (options.live && !options.quiet) draw(false);
      if (!options.live && !options.quiet && seconds_since(last_plain) >= options.plain_progress_seconds) {
        // Not a terminal (a log file, a batch job): a plain line per cell in training now and then.
        last_plain = std::chrono::steady_clock::now();
        std::vector<std::string> lines;
        {
          std::lock_guard<std::mutex> alock(active_mu);
          for (const auto& [i, a] : active) {
            const double secs = seconds_since(a.started);
            const double rate = secs > 0 ? static_cast<double>(a.step - a.first_step) / secs : 0;
            lines.push_back(fmt::format("{}: step {}/{} epoch {}/{} loss {:.4f} alpha_hat {:.3f} {:.1f} steps/s ETA {}",
                                        a.label, a.step, a.total_steps, a.epoch + 1, a.epochs, a.loss, a.alpha, rate,
                                        format_eta(rate > 0 ? (a.total_steps - a.step) / rate : NAN)));
          }
        }
        for (const auto& l : lines) say(l);
      }
      if (seconds_since(last_beat) >= options.heartbeat_seconds) {
        last_beat = std::chrono::steady_clock::now();
        std::vector<int64_t> ids;
        {
          std::lock_guard<std::mutex> alock(active_mu);
          for (const auto& [i, a] : active) ids.push_back(a.run_id);
        }
        try {
          writer.post([ids](storage::Store& s) {
            for (int64_t id : ids) s.heartbeat(id);
          });
        } catch (const std::exception&) {
          // reported by the cell that writes next
        }
      }
    }
  });

  auto worker = [&] {
    if (jobs > 1) at::set_num_threads(threads_per_job);
    for (;;) {
      if (stop_requested()) return;
      const size_t k = next++;
      if (k >= todo.size()) return;
      run_one(todo[k]);
    }
  };
  std::exception_ptr fatal;
  try {
    if (jobs == 1) {
      worker();
    } else {
      std::vector<std::thread> threads;
      for (int j = 0; j < jobs; ++j) threads.emplace_back(worker);
      for (auto& t : threads) t.join();
    }
  } catch (...) {
    fatal = std::current_exception();
  }
  ticking = false;
  tick_cv.notify_all();
  ticker.join();
  if (options.live && !options.quiet) draw(true);
  writer.sync();
  if (fatal) std::rethrow_exception(fatal);
  return summary;
}

}  // namespace htga::experiments

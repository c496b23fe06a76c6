#include "experiments/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include <filesystem>
#include <limits>
#include <mutex>

#include "estimators/noise.h"
#include "experiments/error.h"
#include "experiments/models/zoo.h"
#include "experiments/torch_compat.h"
#include "optimizers/clip.h"

namespace htga::experiments {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

/// Model construction draws from the global generator: one cell at a time.
std::mutex g_init_mutex;

}  // namespace

/// Everything a cell trains with. Members are declared in the order they are built: the order
/// of random draws decides the results.
struct Trainer::Objects {
  torch::nn::AnyModule model;
  torch::nn::Module* module = nullptr;
  std::unique_ptr<Task> task;
  std::vector<torch::Tensor> params;
  torch::Tensor flat_params;  // every parameter is a view of it
  std::unique_ptr<optimizers::Optimizer> optimizer;
  std::optional<optimizers::HtgaController> controller;
  torch::Tensor flat_grad;
  std::unique_ptr<AlphaMonitor> monitor;
  torch::Tensor nan, const_lr;
  // Batch order has its own generator so that nothing else (the estimator included) can shift it.
  at::Generator order_gen, augment_gen, probe_gen, global_gen, cuda_gen;
  std::vector<torch::Tensor> saved_buffers;  // batch-norm statistics while the probe runs
  TrainState state;
};

Trainer::Trainer(const CellSettings& settings, const data::Dataset& dataset, const torch::Device& device,
                 CellWriter& out, TrainerOptions options)
    : s_(settings), d_(dataset), device_(device), out_(out), o_(std::move(options)), m_(new Objects), log_(out) {
  s_.for_dataset(d_.train_size());
  Objects& m = *m_;
  {
    std::lock_guard<std::mutex> lock(g_init_mutex);
    torch::manual_seed(s_.seed);
    m.model = models::make_model(s_.model, models::input_shape_of(d_));
    m.task = std::make_unique<Task>(d_);
    m.task->set_train_eval_size(s_.train.train_eval_size);
    m.task->set_amp(s_.train.amp);
    m.task->set_loader_threads(s_.train.loader_threads);
  }
  m.module = m.model.ptr().get();
  m.module->to(device_);
  m.params = m.module->parameters();
  // Parameters and gradients live in flat buffers: the optimizer updates all of them in a few
  // kernels, and the estimator reads the gradient without a copy.
  m.flat_params = estimators::bind_flat_parameters(m.params);
  m.optimizer = make_optimizer(s_.optimizer, m.params);
  if (s_.optimizer.htga) {
    try {
      const bool per_layer = s_.train.alpha.scope == Scope::kLayer;
      m.controller.emplace(*s_.optimizer.htga, device_, per_layer ? static_cast<int64_t>(m.params.size()) : 1);
    } catch (const std::invalid_argument& e) {
      throw InputError(s_.label + ": " + e.what());
    }
  }
  m.flat_grad = estimators::bind_flat_gradients(m.params);
  m.optimizer->use_flat(m.flat_params, m.flat_grad);
  m.monitor = std::make_unique<AlphaMonitor>(s_.train.alpha, m.params, m.flat_grad, s_.seed);
  if (s_.train.alpha.scope == Scope::kLayer) {
    std::vector<storage::LayerInfo> layers;
    for (const auto& item : m.module->named_parameters())
      layers.push_back({static_cast<int64_t>(layers.size()), item.key(), item.value().numel()});
    out_.layers(std::move(layers));
  }
  auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device_);
  m.nan = torch::full({}, std::numeric_limits<float>::quiet_NaN(), f32);
  m.const_lr = torch::full({}, s_.optimizer.lr, f32);
  m.order_gen = at::detail::createCPUGenerator(s_.seed);
  m.augment_gen = at::detail::createCPUGenerator(s_.seed ^ 0x5bd1e995ULL);
  // The probe draws fresh minibatches from a generator of its own: the training order is untouched.
  m.probe_gen = at::detail::createCPUGenerator(s_.seed ^ 0x9e3779b97f4a7c15ULL);
  m.state = {m.module,
             m.optimizer.get(),
             m.controller ? &*m.controller : nullptr,
             m.monitor.get(),
             {{"order", &m.order_gen}, {"augment", &m.augment_gen}, {"probe", &m.probe_gen}},
             &position_};
  // Dropout draws from the global generator; its state is saved too (exact with --jobs 1).
  m.global_gen = at::detail::getDefaultCPUGenerator();
  m.state.generators.push_back({"global", &m.global_gen});
  // On a GPU, dropout draws from the device's generator.
  if (device_.is_cuda()) {
    m.cuda_gen = at::globalContext().defaultGenerator(device_);
    m.state.generators.push_back({"cuda", &m.cuda_gen});
  }
}

Trainer::~Trainer() = default;

void Trainer::resume(const std::string& file, int64_t epoch, int64_t step) {
  load_checkpoint(file, m_->state, device_, epoch, step);
  first_epoch_ = epoch + 1;
  step_ = step;
  last_checkpoint_ = file;
}

void Trainer::probe_gradient() {
  Objects& m = *m_;
  if (m.saved_buffers.empty())
    for (const auto& b : m.module->buffers()) m.saved_buffers.push_back(b.clone());
  const int64_t n = d_.train_size(), batch = s_.train.batch_size;
  auto idx =
      torch::randint(n, {std::min(batch, n)}, m.probe_gen, torch::TensorOptions().dtype(torch::kInt64)).to(device_);
  m.optimizer->zero_grad();
  const auto b = m.task->batch(idx, /*augment_gen=*/nullptr);
  torch::Tensor loss;
  {
    compat::Autocast autocast(device_, s_.train.amp);
    loss = m.task->loss(m.model.forward(b.x), b.y);
  }
  loss.backward();
}

void Trainer::restore_buffers() {
  Objects& m = *m_;
  if (m.saved_buffers.empty()) return;
  auto buffers = m.module->buffers();
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < buffers.size(); ++i) buffers[i].copy_(m.saved_buffers[i]);
  m.saved_buffers.clear();
}

torch::Tensor Trainer::learning_rate(const AlphaMonitor::Result& estimate, const torch::Tensor& loss) {
  Objects& m = *m_;
  torch::Tensor lr = m.const_lr;
  if (m.controller && m.controller->smoothed_alpha().dim() == 1) {
    // Layer scope: one rate per parameter tensor from its own alpha_hat.
    auto per = estimate.layers.defined() ? estimate.layers : m.nan.expand({m.controller->smoothed_alpha().numel()});
    lr = m.controller->update(per, step_, loss);
  } else if (m.controller) {
    lr = m.controller->update(estimate.alpha, step_, loss);
  }
  const auto& schedule = s_.train.schedule;
  if (schedule.kind != "constant" || schedule.warmup_steps > 0) lr = lr * optimizers::schedule_factor(schedule, step_);
  return lr;
}

void Trainer::step(const Task::Batch& batch, int64_t epoch) {
  Objects& m = *m_;
  const torch::Tensor &x = batch.x, &y = batch.y;
  m.flat_grad.zero_();  // every gradient is a view of it: one kernel instead of one per tensor
  torch::Tensor logits, loss;
  {
    compat::Autocast autocast(device_, s_.train.amp);  // the forward pass only; backward follows its casts
    logits = m.model.forward(x);
    loss = m.task->loss(logits, y);
  }
  loss.backward();

  // alpha_hat of the gradient noise, on the raw (unclipped) gradient.
  const auto t_alpha = Clock::now();
  auto estimate = m.monitor->observe(step_, [this] { probe_gradient(); });
  restore_buffers();
  outcome_.time.alpha_s += seconds_between(t_alpha, Clock::now());
  if (estimate.layers.defined()) log_.add_layers(step_, estimate.layers);
  const torch::Tensor lr = learning_rate(estimate, loss.detach());
  // The norm comes from the alpha_hat pass when it read the gradient anyway (before any
  // element-wise clipping changes it).
  std::optional<double> sumsq = m.monitor->gradient_sumsq();
  if (s_.optimizer.clip_value > 0) {
    m.flat_grad.clamp_(-s_.optimizer.clip_value, s_.optimizer.clip_value);
    sumsq.reset();
  }
  auto clip = optimizers::clip_flat_grad_norm(m.flat_grad, s_.optimizer.clip_norm, sumsq);
  m.optimizer->step(lr);

  auto acc = m.task->accuracy(logits.detach(), y);
  // Layer scope logs the median rate and the median smoothed alpha.
  const auto& a_smooth = m.controller ? m.controller->smoothed_alpha() : m.nan;
  const auto smooth = a_smooth.dim() == 0 ? a_smooth : a_smooth.nanmedian();
  const auto& phase = m.controller ? m.controller->phase() : m.nan;
  const auto lr_log = lr.dim() == 0 ? lr : lr.median();
  log_.add(epoch, {loss.detach(), acc, lr_log, estimate.alpha, clip.total_norm, smooth, phase, clip.coef});
  ++step_;
}

bool Trainer::flush() {
  const auto f = log_.flush(step_);
  last_flush_ = Clock::now();
  if (o_.on_flush && !std::isnan(f.loss)) o_.on_flush(step_, f.epoch, f.loss, f.alpha);
  if (!f.finite) {
    outcome_.status = CellStatus::kDiverged;
    outcome_.error = f.error;
    outcome_.steps = f.stored;
    return false;
  }
  if (out_.lost()) {
    outcome_.status = CellStatus::kLost;
    outcome_.steps = step_;
    return false;
  }
  return true;
}

bool Trainer::evaluate(int64_t epoch, bool last) {
  Objects& m = *m_;
  auto post = [&](const std::string& split, const Evaluation& ev, bool final) {
    std::vector<storage::MetricRow> metrics;
    for (const auto& [name, value] : ev.metrics) metrics.push_back({epoch, split, name, value});
    out_.eval(storage::EvalRow{epoch, step_, split, ev.loss, ev.acc, ev.top5, final}, std::move(metrics));
  };
  const auto t_eval = Clock::now();
  auto due = [&](int64_t every) { return last || (every > 0 && (epoch + 1) % every == 0); };
  auto stopped = [&] {  // nothing posted for the split that stopped; those before it are redone too
    outcome_.time.eval_s += seconds_between(t_eval, Clock::now());
    return false;
  };
  for (const std::string& split : m.task->eval_splits()) {
    if (!due(split == "val" ? s_.train.val_every : s_.train.test_every)) continue;
    const Evaluation ev = m.task->evaluate(m.model, *m.module, split);
    if (ev.stopped) return stopped();
    post(split, ev, last);
    if (split == "val") {
      outcome_.val_acc = ev.acc;
      outcome_.val_metric = ev.main;
    } else if (split == "test") {
      outcome_.test_acc = ev.acc;
      outcome_.test_loss = ev.loss;
      outcome_.test_metric = ev.main;
    }
  }
  if (last) {  // on the training set, for the generalization gap
    const Evaluation tr = m.task->evaluate(m.model, *m.module, "train");
    if (tr.stopped) return stopped();
    post("train", tr, true);
    outcome_.train_acc = tr.acc;
  }
  outcome_.time.eval_s += seconds_between(t_eval, Clock::now());
  return true;
}

void Trainer::checkpoint(int64_t epoch) {
  const int64_t every = s_.train.checkpoint_every;
  if (every <= 0 || (epoch + 1) % every != 0 || o_.checkpoint_dir.empty() || out_.lost()) return;
  // A new file per epoch and claim: the database names the old one until it commits the new one,
  // and a process that lost the cell never writes over the file of the one that took it.
  const std::string file =
      (std::filesystem::path(o_.checkpoint_dir) / fmt::format("{}-t{}-e{}.pt", s_.key, out_.fence().token, epoch))
          .string();
  save_checkpoint(file, m_->state, epoch, step_);
  out_.checkpoint(file, epoch, step_, last_checkpoint_);
  last_checkpoint_ = file;
}

void Trainer::checkpoint_within(int64_t epoch, const torch::Tensor& perm, int64_t next) {
  if (s_.train.checkpoint_every <= 0 || o_.checkpoint_dir.empty() || out_.lost()) return;
  const std::string file = (std::filesystem::path(o_.checkpoint_dir) /
                            fmt::format("{}-t{}-e{}-s{}.pt", s_.key, out_.fence().token, epoch, step_))
                               .string();
  position_ = {perm.cpu(), next};
  try {
    save_checkpoint(file, m_->state, epoch - 1, step_);  // epochs completed: epoch - 1
  } catch (const std::exception& e) {
    position_ = {};
    outcome_.error = fmt::format("(no checkpoint at step {}: {}) ", step_, e.what());
    return;
  }
  position_ = {};
  out_.checkpoint(file, epoch - 1, step_, last_checkpoint_);
  last_checkpoint_ = file;
}

void Trainer::note_cuda_graph() {
  const AlphaMonitor& monitor = *m_->monitor;
  if (!device_.is_cuda() || s_.train.alpha.every <= 0) return;
  if (monitor.graphed())
    outcome_.time.note = "alpha_hat as a CUDA graph";
  else if (!monitor.graph_failure().empty())
    outcome_.time.note = "alpha_hat eager (CUDA graph capture failed: " + monitor.graph_failure() + ")";
}

std::unique_ptr<data::PackedBatches> Trainer::packed_epoch(const torch::Tensor& perm, int64_t first,
                                                           int64_t epoch) const {
  if (!d_.packed) return nullptr;
  const data::PackedSource& s = *d_.packed;
  pack::BatchStreamOptions o;
  auto order = perm.to(torch::kCPU).contiguous();
  for (int64_t p = first; p < order.numel(); ++p) o.indices.push_back(s.train_rows.at(order.data_ptr<int64_t>()[p]));
  o.batch_size = s_.train.batch_size;
  o.train = true;
  o.shuffle = false;  // the order is the trainer's (order_gen), which checkpoints keep
  o.seed = s_.seed;
  o.epoch = epoch;
  o.first_position = first;
  o.loader_threads = s_.train.loader_threads;
  return std::make_unique<data::PackedBatches>(s, *s.train_pack, std::move(o));
}

void Trainer::interrupt(int64_t epoch, const torch::Tensor& perm, int64_t next) {
  outcome_.status = CellStatus::kInterrupted;
  outcome_.steps = step_;
  checkpoint_within(epoch, perm, next);
  outcome_.error += fmt::format("interrupted at step {} (epoch {}); resumes from {}", step_, epoch,
                                last_checkpoint_.empty() ? std::string("the start") : last_checkpoint_);
}

CellOutcome Trainer::run() {
  const int64_t n = d_.train_size(), batch = s_.train.batch_size, epochs = s_.train.epochs;
  // A packed dataset's order stays on the host: it only picks the images the workers decode.
  const torch::Device order_device = d_.packed ? torch::Device(torch::kCPU) : device_;
  last_flush_ = Clock::now();
  for (int64_t epoch = first_epoch_; epoch < epochs; ++epoch) {
    torch::Tensor perm;
    int64_t first = 0;
    if (position_.order.defined()) {  // resumed in the middle of this epoch
      perm = position_.order.to(order_device);
      first = position_.next;
      position_ = {};
    } else {
      perm = torch::randperm(n, m_->order_gen, torch::TensorOptions().dtype(torch::kInt64)).to(order_device);
    }
    std::unique_ptr<data::PackedBatches> stream = packed_epoch(perm, first, epoch);
    for (int64_t start = first; start < n; start += batch) {
      const auto t_step = Clock::now();
      std::optional<data::PackedBatches::Batch> packed;
      if (stream && !(packed = stream->next())) {  // a stop request ended the stream
        if (!flush()) return outcome_;
        interrupt(epoch, perm, start);
        return outcome_;
      }
      step(packed ? Task::Batch{packed->x, packed->y}
                  : m_->task->batch(perm.narrow(0, start, std::min(batch, n - start)), &m_->augment_gen),
           epoch);
      const auto t_log = Clock::now();
      const bool interrupted = o_.stop && o_.stop();
      if (log_.pending() >= o_.flush_every || interrupted ||
          ((step_ & 7) == 0 && seconds_between(last_flush_, t_log) >= o_.flush_seconds))
        if (!flush()) return outcome_;
      const auto t_end = Clock::now();
      outcome_.time.log_s += seconds_between(t_log, t_end);
      outcome_.time.step_s += seconds_between(t_step, t_end);
      ++outcome_.time.steps;
      if (interrupted) {
        interrupt(epoch, perm, start + std::min(batch, n - start));
        return outcome_;
      }
    }
    stream.reset();  // its workers and buffers, before the evaluation streams its own
    if (!flush()) return outcome_;
    const bool last = epoch + 1 == epochs;
    if (!evaluate(epoch, last)) {  // a stop during a streamed evaluation: redone on resume
      interrupt(epoch, perm, n);
      return outcome_;
    }
    if (!last) checkpoint(epoch);
  }
  outcome_.status = CellStatus::kFinished;
  outcome_.steps = step_;
  note_cuda_graph();
  return outcome_;
}

}  // namespace htga::experiments

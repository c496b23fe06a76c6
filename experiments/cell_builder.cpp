#include "experiments/cell_builder.h"

#include <map>
#include <stdexcept>

#include "experiments/registry.h"

namespace htga::experiments {

using nlohmann::json;

namespace {

/// A parameter of a canonical config; its absence is an internal error, not bad input.
template <class T>
T get(const json& block, const char* name, const char* where) {
  const auto it = block.find(name);
  if (it == block.end())
    throw std::logic_error(std::string("internal error: canonical config lacks ") + where + "." + name);
  return it->get<T>();
}

/// The registry default of another optimizer's parameter: what HTGA's base optimizer uses for the
/// settings HTGA does not expose (its momentum, Adam's betas).
template <class T>
T registry_default(const char* optimizer, const char* param) {
  const Entry* e = optimizers().find(optimizer);
  const ParamSpec* p = e ? e->find(param) : nullptr;
  if (!p) throw std::logic_error(std::string("internal error: no registry default for ") + optimizer + "." + param);
  return p->default_value.get<T>();
}

// One reader per optimizer family: the family's own parameters into typed settings.
void read_sgd(const json& o, OptimizerSettings& s) {
  s.update = "sgd";
  s.sgd.weight_decay = get<double>(o, "weight_decay", "optimizer");
}
void read_sgd_clip(const json& o, OptimizerSettings& s) {
  read_sgd(o, s);
  s.clip_norm = get<double>(o, "clip_norm", "optimizer");
  s.clip_value = get<double>(o, "clip_value", "optimizer");
}
void read_momentum(const json& o, OptimizerSettings& s) {
  s.update = "momentum";
  s.sgd.weight_decay = get<double>(o, "weight_decay", "optimizer");
  s.sgd.momentum = get<double>(o, "momentum", "optimizer");
  s.sgd.nesterov = get<bool>(o, "nesterov", "optimizer");
  s.clip_norm = get<double>(o, "clip_norm", "optimizer");
}
void read_adam(const json& o, OptimizerSettings& s) {
  s.update = "adam";
  s.adam.beta1 = get<double>(o, "beta1", "optimizer");
  s.adam.beta2 = get<double>(o, "beta2", "optimizer");
  s.adam.eps = get<double>(o, "eps", "optimizer");
  s.adam.weight_decay = get<double>(o, "weight_decay", "optimizer");
}
void read_adamw(const json& o, OptimizerSettings& s) {
  read_adam(o, s);
  s.update = "adamw";
  s.adam.decoupled = true;
}
/// HTGA owns the rate; its base optimizer owns the update, with that optimizer's registry
/// defaults for what HTGA does not expose, and HTGA's weight decay and clipping.
void read_htga(const json& o, OptimizerSettings& s) {
  s.update = get<std::string>(o, "base", "optimizer");
  const double wd = get<double>(o, "weight_decay", "optimizer");
  s.sgd.weight_decay = s.adam.weight_decay = wd;
  if (s.update == "momentum") s.sgd.momentum = registry_default<double>("momentum", "momentum");
  if (s.update == "adam" || s.update == "adamw") {
    s.adam.beta1 = registry_default<double>("adam", "beta1");
    s.adam.beta2 = registry_default<double>("adam", "beta2");
    s.adam.eps = registry_default<double>("adam", "eps");
    s.adam.decoupled = s.update == "adamw";
  }
  s.clip_norm = get<double>(o, "clip_norm", "optimizer");
  optimizers::HtgaOptions h(s.lr);
  h.alpha0 = get<double>(o, "alpha0", "optimizer");
  h.beta = get<double>(o, "beta", "optimizer");
  h.lr_min = o.at("lr_min").is_null() ? 0.0 : o.at("lr_min").get<double>();  // 0: lr / 10
  h.lr_max = o.at("lr_max").is_null() ? 0.0 : o.at("lr_max").get<double>();  // 0: 10 * lr
  h.alpha_ema = get<double>(o, "alpha_ema", "optimizer");
  h.warmup_steps = get<int64_t>(o, "warmup_steps", "optimizer");
  h.max_lr_change = get<double>(o, "max_lr_change", "optimizer");
  h.alpha0_explore = get<double>(o, "alpha0_explore", "optimizer");
  h.plateau_tol = get<double>(o, "plateau_tol", "optimizer");
  h.plateau_patience = get<int64_t>(o, "plateau_patience", "optimizer");
  h.alpha0_final = get<double>(o, "alpha0_final", "optimizer");
  h.final_fraction = get<double>(o, "final_fraction", "optimizer");
  s.htga = h;
}

using Reader = void (*)(const json&, OptimizerSettings&);
/// The optimizer registry's readers, one line per family (the names of optimizers()).
const std::map<std::string, Reader>& readers() {
  static const std::map<std::string, Reader> m{{"sgd", read_sgd},           {"sgd-clip", read_sgd_clip},
                                               {"momentum", read_momentum}, {"adam", read_adam},
                                               {"adamw", read_adamw},       {"htga", read_htga}};
  return m;
}

using Factory = std::unique_ptr<optimizers::Optimizer> (*)(const std::vector<torch::Tensor>&, const OptimizerSettings&);
std::unique_ptr<optimizers::Optimizer> make_sgd(const std::vector<torch::Tensor>& p, const OptimizerSettings& s) {
  return std::make_unique<optimizers::Sgd>(p, s.sgd);
}
std::unique_ptr<optimizers::Optimizer> make_adam(const std::vector<torch::Tensor>& p, const OptimizerSettings& s) {
  return std::make_unique<optimizers::Adam>(p, s.adam);
}
/// The update rules, by the name a family's reader sets.
const std::map<std::string, Factory>& factories() {
  static const std::map<std::string, Factory> m{
      {"sgd", make_sgd}, {"momentum", make_sgd}, {"adam", make_adam}, {"adamw", make_adam}};
  return m;
}

OptimizerSettings read_optimizer(const json& o) {
  OptimizerSettings s;
  s.name = get<std::string>(o, "name", "optimizer");
  s.lr = get<double>(o, "lr", "optimizer");
  const auto it = readers().find(s.name);
  if (it == readers().end()) throw std::logic_error("internal error: optimizer \"" + s.name + "\" has no reader");
  it->second(o, s);
  return s;
}

AlphaSettings read_alpha(const json& t) {
  AlphaSettings a;
  a.estimator = get<std::string>(t, "estimator", "train");
  a.noise = noise_source_named(get<std::string>(t, "noise", "train"));
  a.scope = scope_named(get<std::string>(t, "scope", "train"));
  a.every = get<int64_t>(t, "alpha_every", "train");
  a.noise_ema = get<double>(t, "noise_ema", "train");
  a.probe_batches = get<int64_t>(t, "probe_batches", "train");
  a.subsample = get<int64_t>(t, "subsample", "train");
  a.k = get<int64_t>(t, "k", "train");
  a.k_fraction = get<double>(t, "k_fraction", "train");
  a.graph = get<bool>(t, "alpha_graph", "train");
  return a;
}

TrainSettings read_train(const json& t) {
  TrainSettings s;
  s.epochs = get<int64_t>(t, "epochs", "train");
  s.batch_size = get<int64_t>(t, "batch_size", "train");
  s.train_eval_size = get<int64_t>(t, "train_eval_size", "train");
  s.test_every = get<int64_t>(t, "test_every", "train");
  s.val_every = get<int64_t>(t, "val_every", "train");
  s.checkpoint_every = get<int64_t>(t, "checkpoint_every", "train");
  s.amp = get<std::string>(t, "amp", "train") == "bf16";
  s.device = get<std::string>(t, "device", "train");
  s.loader_threads = static_cast<int>(get<int64_t>(t, "loader_threads", "train"));
  s.schedule.kind = get<std::string>(t, "schedule", "train");
  s.schedule.warmup_steps = get<int64_t>(t, "lr_warmup_steps", "train");
  s.schedule.step_every = get<int64_t>(t, "lr_step_every", "train");
  s.schedule.gamma = get<double>(t, "lr_gamma", "train");
  s.alpha = read_alpha(t);
  return s;
}

}  // namespace

int64_t CellSettings::steps_per_epoch(int64_t train_rows) const {
  return (train_rows + train.batch_size - 1) / train.batch_size;
}

void CellSettings::for_dataset(int64_t train_rows) {
  const int64_t total = train.epochs * steps_per_epoch(train_rows);
  train.schedule.total_steps = total;
  if (optimizer.htga) optimizer.htga->total_steps = total;
}

CellSettings build_settings(const Cell& cell) {
  const json& c = cell.config;
  CellSettings s;
  s.key = cell.key;
  s.label = cell.label;
  s.seed = static_cast<uint64_t>(get<int64_t>(c, "seed", "cell"));
  s.dataset = c.at("dataset");
  s.model = c.at("model");
  s.optimizer = read_optimizer(c.at("optimizer"));
  s.train = read_train(c.at("train"));
  return s;
}

std::unique_ptr<optimizers::Optimizer> make_optimizer(const OptimizerSettings& settings,
                                                      const std::vector<torch::Tensor>& params) {
  const auto it = factories().find(settings.update);
  if (it == factories().end())
    throw std::logic_error("internal error: no optimizer factory for the update \"" + settings.update + "\"");
  return it->second(params, settings);
}

std::vector<std::string> optimizer_updates() {
  std::vector<std::string> names;
  for (const auto& [name, f] : factories()) names.push_back(name);
  return names;
}

}  // namespace htga::experiments

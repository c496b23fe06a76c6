#include "experiments/registry.h"

namespace htga::experiments {

using nlohmann::json;

const ParamSpec* Entry::find(const std::string& param) const {
  for (const auto& p : params)
    if (p.name == param) return &p;
  return nullptr;
}

const Entry* Registry::find(const std::string& name) const {
  for (const auto& e : entries)
    if (e.name == name) return &e;
  return nullptr;
}

std::string Registry::names() const {
  std::string out;
  for (const auto& e : entries) out += (out.empty() ? "" : ", ") + e.name;
  return out;
}

std::string describe(ParamType type) {
  switch (type) {
    case ParamType::kNumber:
      return "a number";
    case ParamType::kInteger:
      return "an integer";
    case ParamType::kString:
      return "a string";
    case ParamType::kIntList:
      return "a list of positive integers";
    case ParamType::kNumberOrNull:
      return "a number or null";
  }
  return "?";
}

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();

ParamSpec positive(std::string name, json def, std::string help, ParamType t = ParamType::kNumber) {
  return {std::move(name), t, std::move(def), std::move(help), 0.0, true, {}};
}
ParamSpec non_negative(std::string name, json def, std::string help, ParamType t = ParamType::kNumber) {
  return {std::move(name), t, std::move(def), std::move(help), 0.0, false, {}};
}
ParamSpec decay(std::string name, json def, std::string help) {
  // EMA factors live in [0, 1): 1 would never move.
  ParamSpec p{std::move(name), ParamType::kNumber, std::move(def), std::move(help), 0.0, false, {}};
  p.max = 1.0;
  p.max_exclusive = true;
  return p;
}
std::vector<std::string> names_of(const Registry& r) {
  std::vector<std::string> out;
  for (const auto& e : r.entries) out.push_back(e.name);
  return out;
}
}  // namespace

const Registry& datasets() {
  static const Registry r{
      "dataset",
      {{"fashion-mnist",
        "Fashion-MNIST, 28x28 grey images in 10 classes, from gzipped or plain IDX files",
        {{"path",
          ParamType::kString,
          "/usr/share/datasets/fashion-mnist",
          "folder with train-images-idx3-ubyte(.gz), train-labels-..., t10k-images-..., t10k-labels-...",
          -kInf,
          false,
          {}},
         non_negative("train_size", 0, "train on this many examples, equal per class (0 = the whole training set)",
                      ParamType::kInteger),
         {"data_seed",
          ParamType::kInteger,
          0,
          "seed of the train_size subset (the same for every run seed)",
          -kInf,
          false,
          {}}}}}};
  return r;
}

const Registry& models() {
  static const Registry r{"model",
                          {{"mlp",
                            "multi-layer perceptron on flattened inputs, ReLU between layers",
                            {{"hidden",
                              ParamType::kIntList,
                              json::array({256, 128}),
                              "hidden layer widths (a list of lists expands in a grid)",
                              -kInf,
                              false,
                              {}}}}}};
  return r;
}

const Registry& optimizers() {
  static const Registry r{
      "optimizer",
      {{"sgd",
        "plain SGD: w -= lr * (g + weight_decay * w)",
        {positive("lr", 0.1, "learning rate"), non_negative("weight_decay", 0.0, "L2 penalty added to the gradient")}},
       {"sgd-clip",
        "SGD with the global gradient norm clipped at clip_norm (torch.nn.utils.clip_grad_norm_)",
        {positive("lr", 0.1, "learning rate"), positive("clip_norm", 1.0, "largest global L2 norm of the gradient"),
         non_negative("weight_decay", 0.0, "L2 penalty added to the gradient")}},
       {"htga",
        "Heavy-Tail Gradient Amplification: SGD (clipped like sgd-clip) with "
        "lr = lr0 * (alpha_hat / alpha0)^beta, clamped to [lr_min, lr_max]",
        {positive("lr", 0.05, "lr0, the rate when alpha_hat equals alpha0 and before any estimate"),
         positive("alpha0", 1.5, "target tail index"),
         {"beta", ParamType::kNumber, 1.0, "exponent of the rule (0 = plain clipped SGD)", -kInf, false, {}},
         non_negative("clip_norm", 1.0, "largest global L2 norm of the gradient (0 = no clipping)"),
         non_negative("weight_decay", 0.0, "L2 penalty added to the gradient"),
         {"lr_min", ParamType::kNumberOrNull, nullptr, "smallest rate (null = lr / 10)", 0.0, true, {}},
         {"lr_max", ParamType::kNumberOrNull, nullptr, "largest rate (null = 10 * lr)", 0.0, true, {}},
         decay("alpha_ema", 0.9, "EMA factor smoothing alpha_hat before the rule (0 = none)"),
         non_negative("warmup_steps", 10, "steps at rate lr0 before the rule applies", ParamType::kInteger)}}}};
  return r;
}

const Registry& estimators() {
  static const Registry r{
      "estimator",
      {{"hill",
        "Hill estimator on the k = floor(sqrt(n)) largest magnitudes: alpha = k / sum_i log(X(i) / X(k+1))",
        {}}}};
  return r;
}

const Registry& train_settings() {
  static const Registry r{"setting",
                          {{"train",
                            "training settings, in a grid's \"defaults\" (a list expands like any hyper-parameter)",
                            {positive("epochs", 1, "passes over the training set", ParamType::kInteger),
                             positive("batch_size", 128, "examples per step", ParamType::kInteger),
                             {"device",
                              ParamType::kString,
                              "auto",
                              "auto (CUDA when present), cpu, cuda or cuda:N; not part of a cell's key",
                              -kInf,
                              false,
                              {}},
                             {"estimator", ParamType::kString, "hill", "tail-index estimator for alpha_hat", -kInf,
                              false, names_of(estimators())},
                             non_negative("alpha_every", 1,
                                          "estimate alpha_hat of the gradient noise every this many steps (0 = never; "
                                          "htga needs it)",
                                          ParamType::kInteger),
                             decay("noise_ema", 0.9, "noise = g_t - m_t, m_t an EMA of gradients with this factor")}}}};
  return r;
}

}  // namespace htga::experiments

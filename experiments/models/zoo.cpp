#include "experiments/models/zoo.h"

#include <cstdio>
#include <map>
#include <stdexcept>

#include "experiments/data/packed.h"
#include "experiments/error.h"
#include "experiments/models/cnn.h"
#include "experiments/models/lenet.h"
#include "experiments/models/mlp.h"
#include "experiments/models/resnet.h"
#include "experiments/models/transformer.h"
#include "experiments/models/vgg.h"
#include "experiments/registry.h"

namespace htga::models {

using nlohmann::json;

namespace {

/// The config with every parameter its registry entry lists, defaults filled in.
json with_defaults(const json& config) {
  const std::string name = config.at("name").get<std::string>();
  const experiments::Entry* entry = experiments::models().find(name);
  if (!entry) throw InputError("unknown model \"" + name + "\"; valid: " + experiments::models().names());
  json out = config;
  for (const auto& p : entry->params)
    if (!out.contains(p.name)) out[p.name] = p.default_value;
  return out;
}

}  // namespace

namespace {

// One factory per registered model: its canonical registry block (defaults filled in) and the
// input shape make the module.
torch::nn::AnyModule build_transformer(const json& cfg, const InputShape& in) {
  TransformerOptions o;
  o.vocab_size = in.vocab_size;
  o.max_len = in.max_len;
  o.layers = cfg.at("layers").get<int64_t>();
  o.d_model = cfg.at("d_model").get<int64_t>();
  o.heads = cfg.at("heads").get<int64_t>();
  o.ff = cfg.at("ff").get<int64_t>();
  o.dropout = cfg.at("dropout").get<double>();
  switch (in.task) {
    case data::TaskKind::kLm:
      return torch::nn::AnyModule(TransformerLm(o));
    case data::TaskKind::kRegress:
      return torch::nn::AnyModule(TransformerRegressor(o));
    case data::TaskKind::kSpan:
      return torch::nn::AnyModule(TransformerSpan(o));
    default:
      break;
  }
  return torch::nn::AnyModule(TransformerClassifier(o, in.num_classes));
}
torch::nn::AnyModule build_mlp(const json& cfg, const InputShape& in) {
  return torch::nn::AnyModule(
      Mlp(in.channels * in.height * in.width, cfg.at("hidden").get<std::vector<int64_t>>(), in.num_classes));
}
torch::nn::AnyModule build_cnn(const json& cfg, const InputShape& in) {
  CnnOptions o;
  o.channels = cfg.at("channels").get<std::vector<int64_t>>();
  o.hidden = cfg.at("hidden").get<std::vector<int64_t>>();
  o.kernel = cfg.at("kernel").get<int64_t>();
  return torch::nn::AnyModule(Cnn(in.channels, in.height, in.width, in.num_classes, o));
}
torch::nn::AnyModule build_lenet5(const json&, const InputShape& in) {
  return torch::nn::AnyModule(LeNet5(in.channels, in.height, in.width, in.num_classes));
}
torch::nn::AnyModule build_resnet20(const json&, const InputShape& in) {
  return torch::nn::AnyModule(CifarResNet(20, in.channels, in.num_classes));
}
torch::nn::AnyModule build_resnet56(const json&, const InputShape& in) {
  return torch::nn::AnyModule(CifarResNet(56, in.channels, in.num_classes));
}
torch::nn::AnyModule build_resnet18(const json&, const InputShape& in) {
  return torch::nn::AnyModule(ResNet18(in.channels, in.num_classes));
}
torch::nn::AnyModule build_resnet18_imagenet(const json&, const InputShape& in) {
  return torch::nn::AnyModule(
      ImageNetResNet(std::vector<int64_t>{2, 2, 2, 2}, /*bottleneck=*/false, in.channels, in.num_classes));
}
torch::nn::AnyModule build_resnet50(const json&, const InputShape& in) {
  return torch::nn::AnyModule(
      ImageNetResNet(std::vector<int64_t>{3, 4, 6, 3}, /*bottleneck=*/true, in.channels, in.num_classes));
}
torch::nn::AnyModule build_vgg11(const json&, const InputShape& in) {
  return torch::nn::AnyModule(Vgg11(in.channels, in.height, in.width, in.num_classes));
}

/// What a model takes: images, text of any task ("transformer" follows the task, the causal LM
/// for lm, so that one grid can hold text classification and language modelling), or the lm
/// task only.
enum class Takes { kImages, kText, kLm };

struct ModelFactory {
  Takes takes;
  torch::nn::AnyModule (*build)(const json&, const InputShape&);
};

/// The model registry's factories: one line per name of experiments::models().
const std::map<std::string, ModelFactory>& factories() {
  static const std::map<std::string, ModelFactory> m{{"mlp", {Takes::kImages, build_mlp}},
                                                     {"cnn", {Takes::kImages, build_cnn}},
                                                     {"resnet20", {Takes::kImages, build_resnet20}},
                                                     {"resnet56", {Takes::kImages, build_resnet56}},
                                                     {"resnet18", {Takes::kImages, build_resnet18}},
                                                     {"resnet18-imagenet", {Takes::kImages, build_resnet18_imagenet}},
                                                     {"resnet50", {Takes::kImages, build_resnet50}},
                                                     {"vgg11", {Takes::kImages, build_vgg11}},
                                                     {"transformer", {Takes::kText, build_transformer}},
                                                     {"transformer-lm", {Takes::kLm, build_transformer}},
                                                     {"lenet5", {Takes::kImages, build_lenet5}}};
  return m;
}

void check_fits(const std::string& name, Takes takes, const InputShape& in) {
  const bool text = in.task != data::TaskKind::kImages;
  const std::string task = data::name_of(in.task);
  if (text && takes == Takes::kImages)
    throw InputError("model \"" + name + "\" takes images; the " + task +
                     " task takes transformer (or transformer-lm for lm)");
  if (!text && takes != Takes::kImages)
    throw InputError("model \"" + name + "\" takes text; this dataset holds images");
  if (takes == Takes::kLm && in.task != data::TaskKind::kLm)
    throw InputError("model " + name + " takes the lm dataset; the " + task + " task takes transformer");
}

}  // namespace

InputShape input_shape_of(const data::Dataset& d) {
  if (d.packed) return {3, d.packed->crop, d.packed->crop, d.num_classes};
  if (d.task == data::TaskKind::kImages)
    return {d.train_x.size(1), d.train_x.size(2), d.train_x.size(3), d.num_classes};
  InputShape in;
  in.num_classes = d.num_classes;
  in.task = d.task;
  in.vocab_size = d.vocab_size;
  in.max_len = d.max_len;
  return in;
}

std::vector<std::string> factory_names() {
  std::vector<std::string> names;
  for (const auto& [name, f] : factories()) names.push_back(name);
  return names;
}

torch::nn::AnyModule make_model(const json& config, const InputShape& in) {
  const json cfg = with_defaults(config);
  const std::string name = cfg.at("name").get<std::string>();
  const auto it = factories().find(name);
  if (it == factories().end()) throw std::logic_error("internal error: model \"" + name + "\" has no factory");
  check_fits(name, it->second.takes, in);
  try {
    return it->second.build(cfg, in);
  } catch (const std::invalid_argument& e) {
    throw InputError(std::string(e.what()));
  }
}

int64_t parameter_count(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters())
    if (p.requires_grad()) n += p.numel();
  return n;
}

int64_t parameter_count(const json& config, const InputShape& input) {
  auto model = make_model(config, input);
  return parameter_count(*model.ptr());
}

InputShape parse_input_shape(const std::string& text, int64_t num_classes, const std::string& what) {
  InputShape s;
  s.num_classes = num_classes;
  long long c = 0, h = 0, w = 0;
  char rest = 0;
  if (std::sscanf(text.c_str(), "%lldx%lldx%lld%c", &c, &h, &w, &rest) != 3 || c < 1 || h < 1 || w < 1)
    throw InputError(what + ": expected CxHxW with positive sizes, e.g. 3x32x32, got \"" + text + "\"");
  s.channels = c;
  s.height = h;
  s.width = w;
  return s;
}

}  // namespace htga::models

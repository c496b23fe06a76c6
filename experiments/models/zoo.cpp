#include "experiments/models/zoo.h"

#include <cstdio>

#include "experiments/error.h"
#include "experiments/models/cnn.h"
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

torch::nn::AnyModule make_model(const json& config, const InputShape& in) {
  const json cfg = with_defaults(config);
  const std::string name = cfg.at("name").get<std::string>();
  const bool text = in.task != "classify";
  const bool transformer = name == "transformer" || name == "transformer-lm";
  if (text && !transformer)
    throw InputError("model \"" + name + "\" takes images; the " + in.task +
                     " task takes transformer (or transformer-lm for lm)");
  if (!text && transformer) throw InputError("model \"" + name + "\" takes text; this dataset holds images");
  // "transformer" follows the task (the causal LM for lm), so that one grid can hold text
  // classification and language modelling.
  if (name == "transformer-lm" && in.task != "lm")
    throw InputError("model transformer-lm takes the lm dataset; the " + in.task + " task takes transformer");
  try {
    if (transformer) {
      TransformerOptions o;
      o.vocab_size = in.vocab_size;
      o.max_len = in.max_len;
      o.layers = cfg.at("layers").get<int64_t>();
      o.d_model = cfg.at("d_model").get<int64_t>();
      o.heads = cfg.at("heads").get<int64_t>();
      o.ff = cfg.at("ff").get<int64_t>();
      o.dropout = cfg.at("dropout").get<double>();
      if (in.task == "lm") return torch::nn::AnyModule(TransformerLm(o));
      if (in.task == "regress") return torch::nn::AnyModule(TransformerRegressor(o));
      if (in.task == "span") return torch::nn::AnyModule(TransformerSpan(o));
      return torch::nn::AnyModule(TransformerClassifier(o, in.num_classes));
    }
    if (name == "mlp")
      return torch::nn::AnyModule(
          Mlp(in.channels * in.height * in.width, cfg.at("hidden").get<std::vector<int64_t>>(), in.num_classes));
    if (name == "cnn") {
      CnnOptions o;
      o.channels = cfg.at("channels").get<std::vector<int64_t>>();
      o.hidden = cfg.at("hidden").get<std::vector<int64_t>>();
      o.kernel = cfg.at("kernel").get<int64_t>();
      return torch::nn::AnyModule(Cnn(in.channels, in.height, in.width, in.num_classes, o));
    }
    if (name == "resnet20") return torch::nn::AnyModule(CifarResNet(20, in.channels, in.num_classes));
    if (name == "resnet56") return torch::nn::AnyModule(CifarResNet(56, in.channels, in.num_classes));
    if (name == "resnet18") return torch::nn::AnyModule(ResNet18(in.channels, in.num_classes));
    if (name == "vgg11") return torch::nn::AnyModule(Vgg11(in.channels, in.height, in.width, in.num_classes));
  } catch (const std::invalid_argument& e) {
    throw InputError(std::string(e.what()));
  }
  throw InputError("model \"" + name + "\" is registered but not built by the zoo");
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

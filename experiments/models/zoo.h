#pragma once
// The model zoo: builds a model config (as a grid cell holds it) for an input shape.

#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "experiments/data/dataset.h"

namespace htga::models {

/// What a model is built for: one example's shape and the number of classes (images), or the
/// vocabulary, sequence length and task (text).
struct InputShape {
  int64_t channels = 3, height = 32, width = 32;
  int64_t num_classes = 10;
  data::TaskKind task = data::TaskKind::kImages;  // what the dataset holds
  int64_t vocab_size = 0;                         // text: token ids 0..vocab_size-1
  int64_t max_len = 0;                            // text: positions
};

/// Builds the model a config names ({"name": "resnet20"}, {"name": "mlp", "hidden": [64]}, ...);
/// parameters it omits take their registry defaults. Throws InputError for an unknown name or
/// options that do not fit the input shape.
torch::nn::AnyModule make_model(const nlohmann::json& config, const InputShape& input);

/// What a model trained on `dataset` is built for.
InputShape input_shape_of(const data::Dataset& dataset);

/// The names the zoo has factories for (each must be a name of experiments::models()).
std::vector<std::string> factory_names();

/// Number of trainable scalars (parameters, not buffers such as batch-norm statistics).
int64_t parameter_count(const torch::nn::Module& module);

/// Number of trainable scalars of the model a config names, built for `input`.
int64_t parameter_count(const nlohmann::json& config, const InputShape& input);

/// "3x32x32" -> {3, 32, 32}; throws InputError naming `what` otherwise.
InputShape parse_input_shape(const std::string& text, int64_t num_classes, const std::string& what);

}  // namespace htga::models

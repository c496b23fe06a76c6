#pragma once
// Datasets held whole on the device: inputs normalised, labels as int64.

#include <torch/torch.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace htga::data {

struct Dataset {
  std::string name;
  torch::Tensor train_x, train_y;  // [N, C, H, W] float32, [N] int64
  torch::Tensor test_x, test_y;
  int64_t num_classes = 0;
  double load_seconds = 0;
};

/// Checks, without reading them, that a dataset config's files exist (grid validation).
/// Throws InputError naming the path.
void check_available(const nlohmann::json& config);

/// Loads a dataset config (canonical, as a grid cell holds it) onto `device`.
Dataset load_dataset(const nlohmann::json& config, const torch::Device& device);

/// Indices of a subset of `size` examples with equal counts per class (the first
/// size % num_classes classes get one more), drawn reproducibly from `seed`, sorted.
/// Throws InputError when a class has too few examples.
std::vector<int64_t> stratified_subset(const std::vector<uint8_t>& labels, int64_t num_classes, int64_t size,
                                       uint64_t seed);

}  // namespace htga::data

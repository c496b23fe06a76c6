#pragma once
// Fixtures for the unit tests of the training units: a tiny synthetic image dataset and the
// settings of a one-cell grid, without reading any file.

#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>

#include "experiments/cell_builder.h"
#include "experiments/data/dataset.h"
#include "experiments/grid.h"

namespace htga::test {

/// 96 training, 32 test examples of 1x4x4 "images" in 3 classes (class = brightest quadrant).
inline data::Dataset tiny_images(uint64_t seed = 7) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto make = [&](int64_t n, torch::Tensor& x, torch::Tensor& y) {
    y = torch::randint(0, 3, {n}, gen, torch::TensorOptions().dtype(torch::kInt64));
    x = torch::randn({n, 1, 4, 4}, gen, torch::TensorOptions().dtype(torch::kFloat32));
    for (int64_t i = 0; i < n; ++i) x[i][0][y[i].item<int64_t>()][0] += 2.0;
  };
  data::Dataset d;
  d.name = "tiny";
  d.num_classes = 3;
  make(96, d.train_x, d.train_y);
  make(32, d.test_x, d.test_y);
  d.val_x = torch::empty({0, 1, 4, 4});
  d.val_y = torch::empty({0}, torch::kInt64);
  return d;
}

/// The settings of the single cell of a grid whose optimizer and defaults are given.
inline experiments::CellSettings one_cell(const nlohmann::json& optimizer, const nlohmann::json& defaults) {
  nlohmann::json doc = {{"name", "unit"},
                        {"defaults", defaults},
                        {"datasets", {{{"name", "fashion-mnist"}}}},
                        {"models", {{{"name", "mlp"}, {"hidden", {8}}}}},
                        {"optimizers", {optimizer}},
                        {"seeds", {5}}};
  experiments::GridOptions o;
  o.check_data = false;
  const auto grid = experiments::parse_grid(doc, "unit.json", o);
  return experiments::build_settings(grid.cells.at(0));
}

}  // namespace htga::test

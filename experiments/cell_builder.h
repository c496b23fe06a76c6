#pragma once
// The cell builder: a cell's canonical config (JSON, every parameter present) becomes typed
// settings here, once; the training code below it reads no JSON. The registry blocks of the
// dataset and the model are handed, as they are, to the registry's own factories
// (data::load_dataset, models::make_model), which own their parameters.

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "experiments/alpha_monitor.h"
#include "experiments/grid.h"
#include "optimizers/htga.h"
#include "optimizers/schedule.h"
#include "optimizers/sgd.h"

namespace htga::experiments {

/// The optimizer of a cell: the family the grid names, the base that takes the update, and the
/// HTGA controller's options when the family is htga.
struct OptimizerSettings {
  std::string name;                             // the family: sgd, sgd-clip, momentum, adam, adamw, htga
  std::string update;                           // the base optimizer that takes the update (htga: its `base`)
  double lr = 0;                                // the base rate (htga: eta0)
  double clip_norm = 0;                         // largest global L2 norm of the gradient (0 = off)
  double clip_value = 0;                        // largest |element| of the gradient (0 = off)
  optimizers::SgdOptions sgd;                   // update sgd or momentum
  optimizers::AdamOptions adam;                 // update adam or adamw
  std::optional<optimizers::HtgaOptions> htga;  // the rate rule (htga only)
};

/// How a cell trains.
struct TrainSettings {
  int64_t epochs = 0;
  int64_t batch_size = 0;
  int64_t train_eval_size = 0;           // examples of the training set evaluated at the end (0 = all)
  int64_t test_every = 1;                // epochs between test evaluations (0 = the last epoch only)
  int64_t val_every = 1;                 // epochs between validation evaluations (0 = the last epoch only)
  int64_t checkpoint_every = 0;          // epochs between checkpoints (0 = never)
  bool amp = false;                      // bfloat16 autocast of the forward passes
  std::string device;                    // as the grid names it (auto, cpu, cuda:N)
  int loader_threads = 4;                // workers decoding a packed dataset's images
  optimizers::ScheduleOptions schedule;  // total_steps is set by for_dataset()
  AlphaSettings alpha;
};

struct CellSettings {
  std::string key, label;
  uint64_t seed = 0;
  nlohmann::json dataset;  // the dataset's registry block (data::load_dataset reads it)
  nlohmann::json model;    // the model's registry block (models::make_model reads it)
  OptimizerSettings optimizer;
  TrainSettings train;

  /// Steps of one epoch over `train_rows` examples.
  int64_t steps_per_epoch(int64_t train_rows) const;
  /// The settings that depend on the training set's size (the schedule's and HTGA's step counts).
  void for_dataset(int64_t train_rows);
};

/// Reads a cell's canonical config. Throws std::logic_error when the config lacks a parameter
/// (an internal error: grids are expanded with every parameter present).
CellSettings build_settings(const Cell& cell);

/// The base optimizer of `settings` over `params`, built by the optimizer registry's factory
/// for `settings.update`.
std::unique_ptr<optimizers::Optimizer> make_optimizer(const OptimizerSettings& settings,
                                                      const std::vector<torch::Tensor>& params);

/// The names the optimizer factories build (sgd, momentum, adam, adamw): for tests that check
/// every registered optimizer can be built.
std::vector<std::string> optimizer_updates();

}  // namespace htga::experiments

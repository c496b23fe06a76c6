#pragma once
// The per-step statistics of a cell, buffered on the device and written in batches: a step
// adds its scalars as 0-dim tensors (no host synchronisation), and a flush stacks them, copies
// them to the host in one transfer, checks the losses and queues the rows.

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "experiments/cell_writer.h"

namespace htga::experiments {

class StepLog {
 public:
  /// The scalars of a step, in the order of storage::StepRow after step and epoch.
  static constexpr int64_t kStats = 8;  // loss, acc, lr, alpha_hat, grad_norm, alpha_smooth, phase, clip_coef

  explicit StepLog(CellWriter& out) : out_(out) {}

  /// Buffers step `step`'s scalars (kStats tensors, 0-dim, on the device).
  void add(int64_t epoch, const std::vector<torch::Tensor>& stats);
  /// Buffers a per-layer estimate ([layers] float32) of step `step`.
  void add_layers(int64_t step, const torch::Tensor& alphas);
  /// Steps buffered.
  int64_t pending() const { return static_cast<int64_t>(epochs_.size()); }

  /// What a flush found.
  struct Flushed {
    bool finite = true;              // false: a non-finite loss; rows after it are dropped
    std::string error;               // where and what, when not finite
    int64_t stored = 0;              // steps stored so far (through the non-finite one)
    int64_t epoch = 0;               // of the last row written
    double loss = NAN, alpha = NAN;  // of the last row written (for progress)
  };
  /// Writes the buffered steps, the last of which is step `next_step - 1`.
  Flushed flush(int64_t next_step);

 private:
  CellWriter& out_;
  std::vector<torch::Tensor> stats_;
  std::vector<int64_t> epochs_;
  std::vector<std::pair<int64_t, torch::Tensor>> layers_;  // (step, per-layer alpha_hat)
};

}  // namespace htga::experiments

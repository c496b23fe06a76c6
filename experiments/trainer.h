#pragma once
// The training loop of one cell: the model, the optimizer, the HTGA controller, the alpha_hat
// monitor and the random generators, built from typed settings; a step, an evaluation and a
// checkpoint as separate members. Rows go through a CellWriter; nothing is printed.

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "experiments/alpha_monitor.h"
#include "experiments/cell_builder.h"
#include "experiments/cell_writer.h"
#include "experiments/checkpoint.h"
#include "experiments/data/dataset.h"
#include "experiments/data/packed.h"
#include "experiments/step_log.h"
#include "experiments/task.h"

namespace htga::experiments {

/// How a cell's training ended.
enum class CellStatus {
  kFinished,     // trained to the end
  kDiverged,     // stopped at a non-finite loss (a result)
  kInterrupted,  // stopped by request_stop(); resumes from its last checkpoint
  kLost,         // another process took the cell over; nothing more was written
};

struct CellOutcome {
  CellStatus status = CellStatus::kFinished;
  std::string error;  // diverged: where and what; interrupted: where it stopped
  double test_acc = NAN, test_loss = NAN;
  double val_acc = NAN;                        // final validation accuracy (NaN without a validation split)
  double train_acc = NAN;                      // on the training set after the last epoch
  double val_metric = NAN, test_metric = NAN;  // the dataset's main metric (acc for images; mcc, ppl, ...)
  int64_t steps = 0;
  /// Where the training steps' time went (host clock: exact on the CPU; on a GPU the work is
  /// asynchronous and lands wherever the host next waits).
  struct Timing {
    int64_t steps = 0;   // steps timed by this process
    double step_s = 0;   // whole steps, logging included
    double alpha_s = 0;  // alpha_hat: the estimator (and the probe's gradients)
    double log_s = 0;    // the step's statistics, their host copy and the database queue
    double eval_s = 0;   // evaluations (validation, test, and the final pass over the training set)
    std::string note;    // how alpha_hat ran on CUDA (as a graph, or why not)
  } time;
};

struct TrainerOptions {
  int64_t flush_every = 64;    // steps buffered before a database transaction
  double flush_seconds = 5;    // ... or seconds, whichever comes first
  std::string checkpoint_dir;  // "" = no checkpoints
  /// Called on the training thread at every flush: (steps done, epoch, last loss, last alpha_hat).
  std::function<void(int64_t, int64_t, double, double)> on_flush;
  /// Asked after every step: true stops the cell (interrupted).
  std::function<bool()> stop;
};

class Trainer {
 public:
  /// Builds the cell's objects on `device` (the model from the cell's seed). `dataset` and `out`
  /// must outlive the trainer.
  Trainer(const CellSettings& settings, const data::Dataset& dataset, const torch::Device& device, CellWriter& out,
          TrainerOptions options);
  ~Trainer();

  /// Continues from `file`, written after epoch `epoch` (0-based) at `step`. Throws
  /// CheckpointError (file named); the trainer is then unusable: build a new one.
  void resume(const std::string& file, int64_t epoch, int64_t step);

  /// Trains to the end (or to a stop, a non-finite loss or a lost claim).
  CellOutcome run();

 private:
  /// One optimizer step on a training batch of epoch `epoch`.
  void step(const Task::Batch& batch, int64_t epoch);
  /// A packed dataset's stream of the rest of an epoch, rows perm[first:] of the training set,
  /// augmented as the whole epoch's would be; null for a dataset held in memory.
  std::unique_ptr<data::PackedBatches> packed_epoch(const torch::Tensor& perm, int64_t first, int64_t epoch) const;
  /// Records a stop before the batch at `next` of `epoch`: status, checkpoint, message.
  void interrupt(int64_t epoch, const torch::Tensor& perm, int64_t next);
  /// The step's learning rate from the controller (HTGA) and the schedule.
  torch::Tensor learning_rate(const AlphaMonitor::Result& estimate, const torch::Tensor& loss);
  /// Fresh minibatch gradients at the current weights, for the probe noise source.
  void probe_gradient();
  void restore_buffers();
  /// Writes buffered steps; false when training must stop (a non-finite loss, a lost claim).
  bool flush();
  /// The end-of-epoch evaluations (validation, test; the training set after the last epoch).
  /// False when a stop request ended one early (a streamed, packed split): the caller records
  /// the cell as interrupted at the epoch's end, and the resumed cell evaluates again.
  bool evaluate(int64_t epoch, bool last);
  /// A checkpoint after `epoch`, when one is due.
  void checkpoint(int64_t epoch);
  /// A checkpoint in the middle of `epoch` (a stop request): its batch order `perm` and the
  /// first row of the next batch, so that a resumed run goes on from that very step.
  void checkpoint_within(int64_t epoch, const torch::Tensor& perm, int64_t next);
  void note_cuda_graph();

  CellSettings s_;
  const data::Dataset& d_;
  torch::Device device_;
  CellWriter& out_;
  TrainerOptions o_;
  struct Objects;  // model, task, optimizer, controller, monitor, generators
  std::unique_ptr<Objects> m_;
  StepLog log_;
  CellOutcome outcome_;
  int64_t step_ = 0, first_epoch_ = 0;
  std::string last_checkpoint_;
  TrainState::Position position_;  // resumed in the middle of an epoch: where
  std::chrono::steady_clock::time_point last_flush_;
};

}  // namespace htga::experiments

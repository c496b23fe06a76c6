#pragma once
// What differs between the tasks a cell can train on (image classification, text
// classification, regression, span extraction, language modelling): how a training batch is
// taken, the loss, the per-step accuracy and the evaluation with the task's metrics. The train
// loop in runner.cpp is shared and asks this interface.

#include <torch/torch.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "experiments/data/dataset.h"

namespace htga::experiments {

/// One split evaluated.
struct Evaluation {
  double loss = 0;    // mean loss per example (LM: per token, in nats)
  double acc = NAN;   // top-1 accuracy (span: start and end both right; LM: next token); NaN for regression
  double top5 = NAN;  // images with 100 classes or more
  std::vector<std::pair<std::string, double>> metrics;  // the task's named metrics (text tasks)
  double main = NAN;                                    // the dataset's main metric (acc for images)
  bool stopped = false;  // a stop request ended it early (packed streams): nothing was measured
};

class Task {
 public:
  /// `dataset` must outlive the task.
  explicit Task(const data::Dataset& dataset);

  struct Batch {
    torch::Tensor x, y;
  };
  /// Training rows `idx` (on the device): images augmented from `augment_gen` when given; LM
  /// windows split into inputs and next-token targets. A packed dataset's rows are decoded here,
  /// resized and centre-cropped without augmentation (the probe's batches: `augment_gen` must
  /// be null; training batches stream through data::PackedBatches).
  Batch batch(const torch::Tensor& idx, at::Generator* augment_gen) const;

  /// The mean loss of a batch: cross-entropy (classes, and per position for spans and LM tokens)
  /// or squared error (regression).
  torch::Tensor loss(const torch::Tensor& out, const torch::Tensor& y) const;

  /// A float32 scalar on the device: the batch's accuracy, NaN for regression.
  torch::Tensor accuracy(const torch::Tensor& out, const torch::Tensor& y) const;

  /// The splits evaluated after each epoch, in order: val (when it has rows), test, and a second
  /// test split when the dataset has one (MNLI's test_mismatched).
  std::vector<std::string> eval_splits() const;

  /// Evaluates `split` ("train", "val", "test" or the second test split's name) in eval mode.
  /// "train" is measured on at most train_eval_size rows (a fixed random subset; 0 = all).
  Evaluation evaluate(torch::nn::AnyModule& model, torch::nn::Module& module, const std::string& split) const;

  void set_train_eval_size(int64_t n) { train_eval_size_ = n; }
  /// Evaluate under bfloat16 autocast (train.amp = "bf16"), as the training steps are.
  void set_amp(bool amp) { amp_ = amp; }
  /// Workers that decode a packed dataset's images for batch() and evaluate().
  void set_loader_threads(int n) { loader_threads_ = n; }

  /// The rows of the training set that evaluate("train") measures: all of them, or a fixed
  /// random subset of train_eval_size (the same for every run of the dataset), sorted.
  torch::Tensor train_eval_rows(int64_t n) const;

 private:
  /// The rows of a split (the training set's fixed subset for "train"), with SQuAD's answers.
  struct Rows {
    torch::Tensor x, y;
    const data::SpanGold* gold = nullptr;
  };
  /// What the text evaluation gathers for the metrics.
  struct TextOutputs {
    double loss_sum = 0;
    int64_t units = 0;  // examples, or tokens for LM
    std::vector<torch::Tensor> predictions;
    std::vector<std::string> answers;
  };
  Rows rows(const std::string& split) const;
  Evaluation evaluate_images(torch::nn::AnyModule& model, torch::nn::Module& module, const Rows& r) const;
  /// A split of a packed dataset, streamed from its pack (resized and centre-cropped).
  Evaluation evaluate_packed(torch::nn::AnyModule& model, const std::string& split) const;
  Evaluation evaluate_text(torch::nn::AnyModule& model, const Rows& r) const;
  /// The answer texts of SQuAD logits [B, L, 2] for rows first..first+B-1.
  void span_answers(const torch::Tensor& logits, const data::SpanGold& gold, int64_t first,
                    std::vector<std::string>& answers) const;
  void text_metrics(Evaluation& ev, const Rows& r, const TextOutputs& out) const;

  const data::Dataset& d_;
  int64_t train_eval_size_ = 0;
  bool amp_ = false;
  int loader_threads_ = 4;
  data::TaskKind kind_;
};

/// The best answer span of SQuAD start/end logits `logits` (float32 [L, 2], contiguous, on the
/// host) for `feature`: the context positions i <= j < i + max_answer maximising start[i] +
/// end[j], as BERT's run_squad.py; with `allow_null` (v2.0) the empty answer when
/// start[0] + end[0] is higher. Returns the answer text of the context.
std::string best_span_text(const float* logits, int64_t length, const data::SquadFeature& feature,
                           const std::string& context, bool allow_null, int64_t max_answer = 30);

}  // namespace htga::experiments

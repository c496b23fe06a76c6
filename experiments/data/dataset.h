#pragma once
// Datasets held whole on the device: images as uint8 pixels normalised per batch through a
// per-channel table (a quarter of float32's memory), tokens as int64, labels as int64.
//
// Every loader first decodes its files into a RawDataset (uint8 pixels, int64 labels, on the
// host), which is what the cache beside the database holds; load_dataset then carves the
// validation split and the low-data training subset, computes the normalisation table and moves
// the tensors to the device. The packed dataset (packed.h) holds no images at all.

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "experiments/data/squad.h"

namespace htga::data {

struct PackedSource;  // packed.h

/// One split as decoded from its files.
struct RawSplit {
  torch::Tensor images;  // uint8 [N, C, H, W] on the host, contiguous
  torch::Tensor labels;  // int64 [N] on the host, each in 0..num_classes-1
};

/// A dataset as decoded from its files, before subsets and normalisation.
struct RawDataset {
  RawSplit train, test;
  int64_t num_classes = 0;
};

/// What a SQuAD split needs to turn predicted positions back into answer text.
struct SpanGold {
  std::vector<SquadFeature> features;           // one per row of the split's x
  std::vector<std::string> contexts;            // per row: its context
  std::vector<std::vector<std::string>> golds;  // per row: the gold answers (empty: unanswerable)
  bool allow_null = false;                      // v2.0: the [CLS] position may be predicted
};

/// What a dataset's tensors hold, and so how a model reads them and a task scores them.
enum class TaskKind {
  kImages,        // images in classes
  kTextClassify,  // token sequences (or pairs) in classes
  kRegress,       // token pairs with a score (STS-B)
  kSpan,          // question and context, an answer span (SQuAD)
  kLm,            // next-token prediction
};
/// "classify", "text-classify", "regress", "span", "lm": for messages and records.
const char* name_of(TaskKind kind);

/// A dataset's tensors, on the device.
///
/// task says what they hold:
/// - "classify" (images): x uint8 [N, C, H, W] pixels with pixel_table, normalised per batch by
///   normalize_pixels (or x float32 already normalised, when pixel_table is undefined), y int64 [N];
/// - "text-classify": x int64 [N, 2, L] (token ids, segment ids; see models::unpack_tokens), y int64 [N];
/// - "regress" (STS-B): x as text-classify, y float32 [N];
/// - "span" (SQuAD): x as text-classify, y int64 [N, 2] (start, end positions; 0 = no answer);
/// - "lm": x int64 [N, L + 1] windows (inputs [:, :L], targets [:, 1:]), y undefined.
/// The "packed" dataset holds no tensors (x and y are undefined): its images stream from the
/// packs that `packed` names, batch by batch (packed.h).
struct Dataset {
  std::string name;
  TaskKind task = TaskKind::kImages;
  torch::Tensor train_x, train_y;  // [N, C, H, W] float32, [N] int64 (images; see task)
  /// Images on the CPU whose training split is most of the decoded set: the training examples
  /// are train_x's rows train_rows (int64 [n]), not a copy (55,000 of Fashion-MNIST's 60,000
  /// rows would be 43 MB written at load). Undefined: every row of train_x. Read the training
  /// images through train_images(idx).
  torch::Tensor train_rows;
  torch::Tensor val_x, val_y;  // carved from the training set; 0 rows when val_size is 0
  torch::Tensor test_x, test_y;
  int64_t num_classes = 0;
  // Text only.
  std::string metric = "acc";      // the task's main metric (mcc, f1, pearson, ppl, ...)
  std::string glue_task;           // cola, sst2, ...: which GLUE metrics apply ("" otherwise)
  int64_t vocab_size = 0;          // token ids are 0..vocab_size-1
  int64_t max_len = 0;             // positions the model needs (L)
  torch::Tensor test2_x, test2_y;  // a second test split (MNLI's dev_mismatched); undefined when none
  std::string test2_name;          // its split name ("test_mismatched")
  std::shared_ptr<const SpanGold> span_val, span_test;  // SQuAD: answers of the val and test rows
  std::string augment = "none";                         // train-time augmentation of batches: none or crop-flip
  std::vector<double> mean, std;  // per-channel statistics of train_x's pixels (in [0, 1]) removed
  /// Images held as uint8: float32 [C, 256] on the device, entry (c, v) = (v / 255 - mean[c]) /
  /// std[c] rounded to float; undefined when x holds floats (text, test fixtures).
  torch::Tensor pixel_table;
  double load_seconds = 0;                     // decoding (or reading the cache), subsetting, moving to the device
  std::string cache_note;                      // what the cache did: "" (no cache), "read", "written", or why not
  std::shared_ptr<const PackedSource> packed;  // set for the packed dataset: where its images are

  /// Examples of each split (the packs' rows for a packed dataset).
  int64_t train_size() const;
  /// The training examples `idx` (int64 positions in 0..train_size()) of train_x.
  torch::Tensor train_images(const torch::Tensor& idx) const;
  int64_t val_size() const;
  int64_t test_size() const;
};

struct LoadOptions {
  std::string cache_dir;  // folder of decoded-dataset caches ("" = no cache)
  /// When set, a cache to write is queued here instead of written, so that the caller writes it
  /// once everything else has been validated (a refused grid leaves no cache behind). A queued
  /// write never throws: a cache is a convenience.
  std::vector<std::function<void()>>* deferred_writes = nullptr;
};

/// float32 images [N, C, H, W] from uint8 ones through `table` [C, 256] (a gather on x's
/// device: each value is the table's float, bit for bit).
torch::Tensor normalize_pixels(const torch::Tensor& x, const torch::Tensor& table);

/// Checks, without reading them, that a dataset config's files exist and its settings agree
/// (grid validation). Throws InputError naming the path or the setting.
void check_available(const nlohmann::json& config);

/// Loads a dataset config (canonical, as a grid cell holds it; missing settings take their
/// defaults) onto `device`. Throws InputError naming the file and the problem.
Dataset load_dataset(const nlohmann::json& config, const torch::Device& device, const LoadOptions& options = {});

/// Decodes a dataset config's files (no subsets, no normalisation, no cache).
RawDataset decode_dataset(const nlohmann::json& config);

/// The files a dataset config reads, for the cache key (their sizes and times are part of it).
std::vector<std::string> source_files(const nlohmann::json& config);

/// The dataset names load_dataset can read (each must be a name of experiments::datasets()).
std::vector<std::string> dataset_reader_names();

/// Indices of a subset of `size` examples with equal counts per class (the first
/// size % num_classes classes get one more), drawn reproducibly from `seed`, sorted.
/// Throws InputError when a class has too few examples.
std::vector<int64_t> stratified_subset(const std::vector<int64_t>& labels, int64_t num_classes, int64_t size,
                                       uint64_t seed);
std::vector<int64_t> stratified_subset(const std::vector<uint8_t>& labels, int64_t num_classes, int64_t size,
                                       uint64_t seed);

/// Indices of a subset holding round(fraction * n_c) examples of each class c (at least one of
/// each class present), so the class proportions of `labels` are kept; reproducible from
/// `seed`, sorted. `fraction` in (0, 1].
std::vector<int64_t> stratified_fraction(const std::vector<int64_t>& labels, int64_t num_classes, double fraction,
                                         uint64_t seed);

/// The rows of a training set of `labels` after carving a stratified validation split of
/// `val_size` examples and keeping `train_size` examples (equal per class, 0 = all) or
/// `train_fraction` of each class (1 = all) of the rest. Both are drawn from `seed`, sorted and
/// disjoint; with val_size 0 the training rows are those of stratified_subset(labels, ...,
/// train_size, seed).
struct SplitRows {
  std::vector<int64_t> train, val;
};
SplitRows split_rows(const std::vector<int64_t>& labels, int64_t num_classes, int64_t val_size, int64_t train_size,
                     double train_fraction, uint64_t seed);

}  // namespace htga::data

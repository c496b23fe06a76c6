#pragma once
// The "packed" dataset: images that stay in the packs `htga pack` wrote (DIR/train.pack,
// DIR/val.pack) and are streamed by worker threads (pack/batch_stream.h) one batch at a time,
// so that resident memory does not grow with the dataset. The validation split is carved from
// train.pack (equal per class, never trained on); val.pack is the test split.
//
// Each uint8 HWC batch becomes a tensor (pinned host memory when the device is CUDA, copied
// without blocking), then float NCHW normalised on the device with ImageNet's per-channel mean
// and standard deviation: the constants every torchvision ImageNet recipe uses, not statistics
// of the pack (computing them would read the whole training split).

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "experiments/pack/batch_stream.h"
#include "experiments/pack/reader.h"

namespace htga::data {

struct Dataset;

/// ImageNet's per-channel mean and standard deviation of pixels in [0, 1] (RGB), as torchvision.
constexpr double kImageNetMean[3] = {0.485, 0.456, 0.406};
constexpr double kImageNetStd[3] = {0.229, 0.224, 0.225};

/// Where a packed dataset's images are: the packs, the rows of each split, and the device.
struct PackedSource {
  std::shared_ptr<const pack::PackFile> train_pack;  // DIR/train.pack: the train and val splits
  std::shared_ptr<const pack::PackFile> test_pack;   // DIR/val.pack: the test split
  std::vector<int64_t> train_rows, val_rows;         // images of train_pack, sorted and disjoint
  int crop = 224;                                    // side of every batch image, pixels
  torch::Device device = torch::kCPU;
  torch::Tensor scale, shift;  // float32 [1, 3, 1, 1] on the device: x / 255 / std, mean / std

  /// The images of train_pack (or test_pack for "test") that make up `split` ("train", "val",
  /// "test"), as BatchStream indices.
  const pack::PackFile& pack_of(const std::string& split) const;
  std::vector<int64_t> rows_of(const std::string& split) const;
};

/// Opens DIR/train.pack and DIR/val.pack of a "packed" dataset config (validating both: a
/// truncated or corrupt pack is an InputError naming it) and checks that crop is positive.
void check_packed(const nlohmann::json& config);

/// The "packed" dataset of `config` (path, crop, train_size, train_fraction, val_size,
/// data_seed) on `device`: no image is read here, only the packs' indices.
Dataset load_packed(const nlohmann::json& config, const torch::Device& device);

/// The files a packed dataset reads.
std::vector<std::string> packed_files(const nlohmann::json& config);

/// A BatchStream whose batches come out as tensors on the source's device: x float32
/// [B, 3, crop, crop] normalised, y int64 [B].
class PackedBatches {
 public:
  PackedBatches(const PackedSource& source, const pack::PackFile& pack, pack::BatchStreamOptions options);
  struct Batch {
    torch::Tensor x, y;
  };
  /// The next batch; std::nullopt after the last one (or a stop request).
  std::optional<Batch> next();

 private:
  const PackedSource& source_;
  pack::BatchStream stream_;
};

/// Images read from a pack into a tensor on the device, normalised: uint8 HWC pixels [B, crop,
/// crop, 3] from `pixels` (copied: the caller's buffer can be released on return).
torch::Tensor packed_to_device(const PackedSource& source, const uint8_t* pixels, int64_t batch);

}  // namespace htga::data

#pragma once
// Train-time augmentation on whole batches, on the batch's device: no per-example copies and
// no host round trip but the few random numbers of a batch.

#include <ATen/core/Generator.h>
#include <torch/torch.h>

#include <string>

namespace htga::data {

/// Padding of the random crop, in pixels on each side (the CIFAR recipe of He et al. 2016).
constexpr int64_t kCropPadding = 4;

/// Crops and flips each image of a batch: out[b, c, i, j] = padded[b, c, dy[b] + i, dx'[b, j]]
/// where padded is x with `pad` zeros on every side and dx'[b, j] = dx[b] + j, or
/// dx[b] + W - 1 - j when flip[b] is true (a horizontal mirror of the crop).
/// x: [B, C, H, W]; dy, dx: int64 [B] in 0..2*pad; flip: bool [B]; all on x's device.
/// Zeros pad the normalised images, so the border is the mean colour of the training set.
torch::Tensor crop_flip(const torch::Tensor& x, int64_t pad, const torch::Tensor& dy, const torch::Tensor& dx,
                        const torch::Tensor& flip);

/// Random crop (offsets uniform in 0..2*pad) and horizontal flip (probability 1/2) per image,
/// drawn from `gen` (a CPU generator).
torch::Tensor random_crop_flip(const torch::Tensor& x, int64_t pad, at::Generator& gen);

/// Applies a dataset's augmentation by name: "none" returns x, "crop-flip" random_crop_flip
/// with kCropPadding. Throws std::invalid_argument for another name.
torch::Tensor augment_batch(const torch::Tensor& x, const std::string& augment, at::Generator& gen);

}  // namespace htga::data

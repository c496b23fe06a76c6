#pragma once
// The image transforms of the packed-ImageNet loader, as torchvision writes them:
//   train  RandomResizedCrop(crop, scale=(0.08, 1), ratio=(3/4, 4/3)) then
//          RandomHorizontalFlip(p=0.5): torchvision/transforms/transforms.py, get_params;
//   val    Resize(floor(crop / 0.875)) then CenterCrop(crop): the Resize(256) + CenterCrop(224)
//          convention of the ImageNet reference scripts, for any crop.
// Resizing is resize_rgb() (antialiased bilinear). The random numbers come from an ImageRng that
// depends only on (seed, epoch, position in the epoch), never on the thread that draws them.

#include <cmath>
#include <cstdint>
#include <random>

#include "experiments/pack/image.h"

namespace htga::pack {

/// splitmix64's finaliser: spreads nearby integers (seeds, positions) over 64 bits.
uint64_t mix64(uint64_t x);

/// The random numbers of one image (or of one epoch's shuffle): a Mersenne Twister seeded from
/// (seed, epoch, stream). uniform() and below() are written out rather than taken from
/// <random>'s distributions, whose algorithms differ between standard libraries.
class ImageRng {
 public:
  ImageRng(uint64_t seed, uint64_t epoch, uint64_t stream) : engine_(mix64(mix64(mix64(seed) ^ epoch) ^ stream)) {}
  /// Uniform in [0, 1), 53 random bits.
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  /// Uniform integer in [0, n), n >= 1 (Lemire's multiply-shift; bias < n / 2^64).
  int64_t below(int64_t n) {
    return static_cast<int64_t>((static_cast<unsigned __int128>(engine_()) * static_cast<uint64_t>(n)) >> 64);
  }

 private:
  std::mt19937_64 engine_;
};

/// A crop: rows [top, top + height), columns [left, left + width).
struct CropBox {
  int top = 0, left = 0, height = 0, width = 0;
  bool operator==(const CropBox& o) const {
    return top == o.top && left == o.left && height == o.height && width == o.width;
  }
};

struct RandomResizedCropParams {
  double scale_min = 0.08, scale_max = 1.0;             // of the image's area
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;  // width / height, drawn log-uniformly
  int tries = 10;                                       // before the centre fallback
};

/// torchvision's RandomResizedCrop.get_params for a `height` x `width` image: up to `tries`
/// draws of an area fraction s ~ U(scale) and a ratio r = exp(U(log ratio)); w = round(sqrt(A s r)),
/// h = round(sqrt(A s / r)) (round half to even, as Python's round), accepted when
/// 0 < w <= width and 0 < h <= height, at top ~ U{0..height-h}, left ~ U{0..width-w}. Otherwise the
/// centred whole image with its ratio clamped into [ratio_min, ratio_max].
/// `Rng` has double uniform() in [0, 1) and int64_t below(n) in [0, n).
template <class Rng>
CropBox random_resized_crop_box(int height, int width, Rng& rng, const RandomResizedCropParams& p = {}) {
  const double area = static_cast<double>(height) * width;
  const double log_lo = std::log(p.ratio_min), log_hi = std::log(p.ratio_max);
  for (int t = 0; t < p.tries; ++t) {
    const double target = area * (p.scale_min + (p.scale_max - p.scale_min) * rng.uniform());
    const double ratio = std::exp(log_lo + (log_hi - log_lo) * rng.uniform());
    const int w = static_cast<int>(std::nearbyint(std::sqrt(target * ratio)));
    const int h = static_cast<int>(std::nearbyint(std::sqrt(target / ratio)));
    if (0 < w && w <= width && 0 < h && h <= height) {
      const int top = static_cast<int>(rng.below(height - h + 1));
      const int left = static_cast<int>(rng.below(width - w + 1));
      return {top, left, h, w};
    }
  }
  const double in_ratio = static_cast<double>(width) / height;
  int w = width, h = height;
  if (in_ratio < p.ratio_min) {
    h = static_cast<int>(std::nearbyint(w / p.ratio_min));
  } else if (in_ratio > p.ratio_max) {
    w = static_cast<int>(std::nearbyint(h * p.ratio_max));
  }
  return {(height - h) / 2, (width - w) / 2, h, w};
}

/// The train transform into `out` (crop * crop * 3 bytes): the box, resized to crop x crop, then
/// mirrored left-right when rng.uniform() < 0.5 (drawn after the box).
void random_resized_crop(const RgbImage& image, int crop, ImageRng& rng, uint8_t* out);

/// The shorter side the val transform resizes to: floor(crop / 0.875) (256 for 224).
int val_resize_size(int crop);
/// The centre crop's top-left corner in a `height` x `width` image: round((H - crop) / 2), as
/// torchvision's CenterCrop.
CropBox center_crop_box(int height, int width, int crop);
/// The val transform into `out` (crop * crop * 3 bytes): shorter side to val_resize_size(crop),
/// then the centre crop x crop. `scratch` is reused between calls.
void resize_center_crop(const RgbImage& image, int crop, RgbImage& scratch, uint8_t* out);

}  // namespace htga::pack

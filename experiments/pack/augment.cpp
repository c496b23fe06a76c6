#include "experiments/pack/augment.h"

#include <algorithm>
#include <cstring>

namespace htga::pack {

uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

namespace {

void flip_rows(uint8_t* pixels, int height, int width) {
  for (int y = 0; y < height; ++y) {
    uint8_t* row = pixels + static_cast<size_t>(y) * width * 3;
    for (int a = 0, b = width - 1; a < b; ++a, --b)
      for (int c = 0; c < 3; ++c) std::swap(row[3 * a + c], row[3 * b + c]);
  }
}

}  // namespace

void random_resized_crop(const RgbImage& image, int crop, ImageRng& rng, uint8_t* out) {
  const CropBox box = random_resized_crop_box(image.height, image.width, rng);
  const size_t stride = static_cast<size_t>(image.width) * 3;
  const uint8_t* origin = image.pixels.data() + box.top * stride + static_cast<size_t>(box.left) * 3;
  resize_rgb(origin, box.height, box.width, stride, out, crop, crop);
  if (rng.uniform() < 0.5) flip_rows(out, crop, crop);
}

int val_resize_size(int crop) { return static_cast<int>(std::floor(crop / 0.875 + 1e-9)); }

CropBox center_crop_box(int height, int width, int crop) {
  return {static_cast<int>(std::nearbyint((height - crop) / 2.0)),
          static_cast<int>(std::nearbyint((width - crop) / 2.0)), crop, crop};
}

void resize_center_crop(const RgbImage& image, int crop, RgbImage& scratch, uint8_t* out) {
  shorter_side_size(image.height, image.width, val_resize_size(crop), scratch.height, scratch.width);
  const RgbImage* resized = &image;
  if (scratch.height != image.height || scratch.width != image.width) {
    scratch.pixels.resize(static_cast<size_t>(scratch.height) * scratch.width * 3);
    resize_rgb(image.pixels.data(), image.height, image.width, static_cast<size_t>(image.width) * 3,
               scratch.pixels.data(), scratch.height, scratch.width);
    resized = &scratch;
  }
  const CropBox box = center_crop_box(resized->height, resized->width, crop);
  const size_t stride = static_cast<size_t>(resized->width) * 3, row = static_cast<size_t>(crop) * 3;
  for (int y = 0; y < crop; ++y)
    std::memcpy(out + y * row, resized->pixels.data() + (box.top + y) * stride + static_cast<size_t>(box.left) * 3,
                row);
}

}  // namespace htga::pack

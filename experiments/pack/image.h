#pragma once
// Images of `htga pack` and its reader: decoding (TurboJPEG for JPEG, stb_image for PNG and the
// rest), a good-quality resize and JPEG encoding, all on uint8 HWC RGB buffers.

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace htga::pack {

/// An image that cannot be decoded (a corrupt or truncated JPEG, an unknown format): the packer
/// skips it and reports it; the reader turns it into an error naming the pack.
class DecodeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// uint8 pixels, row-major, channels last (HWC), RGB.
struct RgbImage {
  int height = 0;
  int width = 0;
  std::vector<uint8_t> pixels;  // height * width * 3
};

/// TurboJPEG handles for one thread (they are not shared between threads).
class JpegCodec {
 public:
  JpegCodec();
  ~JpegCodec();
  JpegCodec(const JpegCodec&) = delete;
  JpegCodec& operator=(const JpegCodec&) = delete;

  /// Decodes a JPEG to RGB. With `min_short` > 0 it uses TurboJPEG's DCT scaling (1/8..1): the
  /// smallest scale whose shorter side is still >= min_short, which is several times faster than
  /// decoding a large photo in full. Grey JPEGs come out as RGB; CMYK and YCCK ones are decoded to
  /// CMYK and converted (Adobe's inverted convention, as TurboJPEG's own tjLoadImage does).
  /// Throws DecodeError for a corrupt or truncated JPEG.
  RgbImage decode(const uint8_t* data, size_t size, int min_short = 0);
  /// Decodes into `out` (reused between calls: no allocation once it is large enough).
  void decode_into(const uint8_t* data, size_t size, int min_short, RgbImage& out);
  /// JPEG of `image` at `quality` (1..100), 4:2:0 chroma subsampling.
  std::string encode(const RgbImage& image, int quality);

 private:
  void* decompressor_ = nullptr;
  void* compressor_ = nullptr;
};

/// True when the bytes start with a JPEG's SOI marker (FF D8 FF).
bool is_jpeg(const uint8_t* data, size_t size);

/// Decodes any image: JPEG through `codec`, anything else (PNG, BMP, GIF, PPM/PGM, TGA) through
/// stb_image; grey and grey+alpha become RGB, alpha is dropped. Throws DecodeError.
RgbImage decode_image(JpegCodec& codec, const uint8_t* data, size_t size, int min_short = 0);

/// Resamples the `height` x `width` RGB region at `src` (rows `stride` bytes apart) to
/// `out_height` x `out_width` into `dst` (tightly packed). The filter is PIL's BILINEAR with
/// antialiasing (a triangle whose support widens with the downscale factor, Pillow's
/// libImaging/Resample.c), in 22-bit fixed point: torchvision's Resize(antialias=True).
void resize_rgb(const uint8_t* src, int height, int width, size_t stride, uint8_t* dst, int out_height, int out_width);

/// The output size of torchvision's Resize(size) for an int: the shorter side becomes `size`, the
/// longer one int(size * long / short).
void shorter_side_size(int height, int width, int size, int& out_height, int& out_width);

/// `image` with its shorter side resized to `size` (a copy when it already is).
RgbImage resize_shorter(const RgbImage& image, int size);

}  // namespace htga::pack

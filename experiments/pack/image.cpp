#include "experiments/pack/image.h"

#include <turbojpeg.h>

#include <algorithm>
#include <cmath>
#include <cstring>

// stb_image compiled here with internal linkage (experiments/data/image_folder.cpp has its own
// copy in the LibTorch half of htga); no TGA, which has no magic number and would "decode" junk.
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_ONLY_PNM
#define STBI_FAILURE_USERMSG
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

namespace htga::pack {

JpegCodec::JpegCodec() : decompressor_(tjInitDecompress()), compressor_(tjInitCompress()) {
  if (!decompressor_ || !compressor_) throw std::runtime_error("TurboJPEG: cannot create a codec");
}

JpegCodec::~JpegCodec() {
  tjDestroy(decompressor_);
  tjDestroy(compressor_);
}

bool is_jpeg(const uint8_t* data, size_t size) {
  return size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
}

namespace {

/// The smallest DCT scale (num/denom <= 1) whose shorter side stays >= min_short.
tjscalingfactor choose_scale(int width, int height, int min_short) {
  tjscalingfactor best{1, 1};
  if (min_short <= 0) return best;
  int n = 0;
  const tjscalingfactor* factors = tjGetScalingFactors(&n);
  for (int i = 0; i < n; ++i) {
    const tjscalingfactor f = factors[i];
    if (f.num > f.denom) continue;
    if (std::min(TJSCALED(width, f), TJSCALED(height, f)) < min_short) continue;
    if (f.num * best.denom < best.num * f.denom) best = f;
  }
  return best;
}

/// Adobe CMYK JPEGs store inverted values: R = C * K / 255 (TurboJPEG's cmyk_to_rgb).
void cmyk_to_rgb(const std::vector<uint8_t>& cmyk, uint8_t* rgb, size_t pixels) {
  for (size_t i = 0; i < pixels; ++i) {
    const int c = cmyk[4 * i], m = cmyk[4 * i + 1], y = cmyk[4 * i + 2], k = cmyk[4 * i + 3];
    rgb[3 * i] = static_cast<uint8_t>((c * k + 127) / 255);
    rgb[3 * i + 1] = static_cast<uint8_t>((m * k + 127) / 255);
    rgb[3 * i + 2] = static_cast<uint8_t>((y * k + 127) / 255);
  }
}

}  // namespace

void JpegCodec::decode_into(const uint8_t* data, size_t size, int min_short, RgbImage& out) {
  int width = 0, height = 0, subsamp = 0, colorspace = 0;
  auto* buf = const_cast<unsigned char*>(data);
  if (tjDecompressHeader3(decompressor_, buf, size, &width, &height, &subsamp, &colorspace) != 0)
    throw DecodeError(std::string("corrupt JPEG: ") + tjGetErrorStr2(decompressor_));
  const tjscalingfactor f = choose_scale(width, height, min_short);
  out.width = TJSCALED(width, f);
  out.height = TJSCALED(height, f);
  out.pixels.resize(static_cast<size_t>(out.width) * out.height * 3);
  const bool cmyk = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;
  std::vector<uint8_t> four;
  if (cmyk) four.resize(static_cast<size_t>(out.width) * out.height * 4);
  uint8_t* dst = cmyk ? four.data() : out.pixels.data();
  if (tjDecompress2(decompressor_, buf, size, dst, out.width, 0, out.height, cmyk ? TJPF_CMYK : TJPF_RGB, 0) != 0) {
    const std::string why = tjGetErrorStr2(decompressor_);
    // Warnings (extraneous bytes before a marker, ...) leave a good image, as PIL accepts them;
    // a premature end leaves grey rows, and PIL refuses that too.
    if (tjGetErrorCode(decompressor_) != TJERR_WARNING || why.find("Premature end") != std::string::npos)
      throw DecodeError("corrupt JPEG: " + why);
  }
  if (cmyk) cmyk_to_rgb(four, out.pixels.data(), static_cast<size_t>(out.width) * out.height);
}

RgbImage JpegCodec::decode(const uint8_t* data, size_t size, int min_short) {
  RgbImage out;
  decode_into(data, size, min_short, out);
  return out;
}

std::string JpegCodec::encode(const RgbImage& image, int quality) {
  unsigned char* jpeg = nullptr;
  unsigned long jpeg_size = 0;
  if (tjCompress2(compressor_, image.pixels.data(), image.width, 0, image.height, TJPF_RGB, &jpeg, &jpeg_size,
                  TJSAMP_420, quality, 0) != 0) {
    tjFree(jpeg);
    throw std::runtime_error(std::string("TurboJPEG: cannot encode: ") + tjGetErrorStr2(compressor_));
  }
  std::string out(reinterpret_cast<const char*>(jpeg), jpeg_size);
  tjFree(jpeg);
  return out;
}

RgbImage decode_image(JpegCodec& codec, const uint8_t* data, size_t size, int min_short) {
  if (is_jpeg(data, size)) return codec.decode(data, size, min_short);
  if (size > static_cast<size_t>(INT32_MAX)) throw DecodeError("image file too large");
  int width = 0, height = 0, channels = 0;
  uint8_t* pixels = stbi_load_from_memory(data, static_cast<int>(size), &width, &height, &channels, 3);
  if (!pixels) throw DecodeError(std::string("cannot decode: ") + stbi_failure_reason());
  RgbImage out;
  out.width = width;
  out.height = height;
  out.pixels.assign(pixels, pixels + static_cast<size_t>(width) * height * 3);
  stbi_image_free(pixels);
  return out;
}

namespace {

constexpr int kPrecisionBits = 22;  // Pillow's PRECISION_BITS: 255 * 2^22 * weight sum fits an int32

/// For each output pixel along one axis: the first input pixel, how many, and their fixed-point
/// weights (Pillow's precompute_coeffs with the bilinear filter, support 1).
struct Taps {
  std::vector<int> first, count;
  std::vector<int32_t> weights;  // `stride` per output pixel
  int stride = 0;
};

Taps compute_taps(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filter_scale = std::max(scale, 1.0);
  const double support = filter_scale;
  Taps t;
  t.stride = static_cast<int>(std::ceil(support)) * 2 + 1;
  t.first.resize(out_size);
  t.count.resize(out_size);
  t.weights.assign(static_cast<size_t>(out_size) * t.stride, 0);
  std::vector<double> w(t.stride);
  for (int o = 0; o < out_size; ++o) {
    const double center = (o + 0.5) * scale;
    const int lo = std::max(static_cast<int>(center - support + 0.5), 0);
    const int n = std::min(static_cast<int>(center + support + 0.5), in_size) - lo;
    double sum = 0;
    for (int k = 0; k < n; ++k) {
      w[k] = std::max(0.0, 1.0 - std::abs((k + lo - center + 0.5) / filter_scale));
      sum += w[k];
    }
    for (int k = 0; k < n; ++k) {
      const double v = sum != 0 ? w[k] / sum : 0;
      t.weights[static_cast<size_t>(o) * t.stride + k] =
          static_cast<int32_t>(v < 0 ? -0.5 + v * (1 << kPrecisionBits) : 0.5 + v * (1 << kPrecisionBits));
    }
    t.first[o] = lo;
    t.count[o] = n;
  }
  return t;
}

inline uint8_t clip8(int32_t acc) {
  const int32_t v = acc >> kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

/// Resamples each row of `rows` rows along x.
void resample_rows(const uint8_t* src, size_t stride, int rows, const Taps& t, int out_width, uint8_t* dst) {
  for (int y = 0; y < rows; ++y) {
    const uint8_t* in = src + y * stride;
    uint8_t* out = dst + static_cast<size_t>(y) * out_width * 3;
    for (int x = 0; x < out_width; ++x) {
      const int32_t* w = &t.weights[static_cast<size_t>(x) * t.stride];
      const uint8_t* p = in + static_cast<size_t>(t.first[x]) * 3;
      int32_t r = 1 << (kPrecisionBits - 1), g = r, b = r;
      for (int k = 0; k < t.count[x]; ++k, p += 3) {
        r += p[0] * w[k];
        g += p[1] * w[k];
        b += p[2] * w[k];
      }
      out[3 * x] = clip8(r);
      out[3 * x + 1] = clip8(g);
      out[3 * x + 2] = clip8(b);
    }
  }
}

/// Resamples along y: `src` rows of `row_bytes` bytes, tightly packed.
void resample_columns(const uint8_t* src, size_t row_bytes, const Taps& t, int out_height, uint8_t* dst) {
  std::vector<int32_t> acc(row_bytes);
  for (int y = 0; y < out_height; ++y) {
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    const int32_t* w = &t.weights[static_cast<size_t>(y) * t.stride];
    for (int k = 0; k < t.count[y]; ++k) {
      const uint8_t* in = src + static_cast<size_t>(t.first[y] + k) * row_bytes;
      const int32_t wk = w[k];
      for (size_t i = 0; i < row_bytes; ++i) acc[i] += in[i] * wk;
    }
    uint8_t* out = dst + static_cast<size_t>(y) * row_bytes;
    for (size_t i = 0; i < row_bytes; ++i) out[i] = clip8(acc[i]);
  }
}

}  // namespace

void resize_rgb(const uint8_t* src, int height, int width, size_t stride, uint8_t* dst, int out_height, int out_width) {
  const size_t out_row = static_cast<size_t>(out_width) * 3;
  if (height == out_height && width == out_width) {
    for (int y = 0; y < height; ++y) std::memcpy(dst + y * out_row, src + y * stride, out_row);
    return;
  }
  if (height == out_height) return resample_rows(src, stride, height, compute_taps(width, out_width), out_width, dst);
  // Along x first, over the rows the y pass reads; then along y.
  std::vector<uint8_t> mid(static_cast<size_t>(height) * out_row);
  if (width == out_width) {
    for (int y = 0; y < height; ++y) std::memcpy(&mid[y * out_row], src + y * stride, out_row);
  } else {
    resample_rows(src, stride, height, compute_taps(width, out_width), out_width, mid.data());
  }
  resample_columns(mid.data(), out_row, compute_taps(height, out_height), out_height, dst);
}

void shorter_side_size(int height, int width, int size, int& out_height, int& out_width) {
  if (width <= height) {
    out_width = size;
    out_height = static_cast<int>(static_cast<int64_t>(size) * height / width);
  } else {
    out_height = size;
    out_width = static_cast<int>(static_cast<int64_t>(size) * width / height);
  }
}

RgbImage resize_shorter(const RgbImage& image, int size) {
  RgbImage out;
  shorter_side_size(image.height, image.width, size, out.height, out.width);
  out.pixels.resize(static_cast<size_t>(out.height) * out.width * 3);
  resize_rgb(image.pixels.data(), image.height, image.width, static_cast<size_t>(image.width) * 3, out.pixels.data(),
             out.height, out.width);
  return out;
}

}  // namespace htga::pack

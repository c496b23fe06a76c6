// htga pack and its reader on small ImageNet-like folders that each test makes: JPEGs of a few
// sizes (one grey), a PNG, a corrupt JPEG and an empty file, with the validation labels in each
// of the layouts inputs.h reads.

#include "experiments/pack/pack.h"

#include <turbojpeg.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "cli/cmd_pack.h"
#include "experiments/error.h"
#include "experiments/pack/augment.h"
#include "experiments/pack/batch_stream.h"
#include "experiments/pack/image.h"
#include "experiments/pack/reader.h"
#include "experiments/stop.h"
#include "test_util.h"

#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

namespace fs = std::filesystem;
using namespace htga::pack;
using htga::test::read_file;
using htga::test::TempDir;
using htga::test::write_text;

namespace {

/// Smooth colours with some texture, different for each seed.
RgbImage pattern(int height, int width, int seed) {
  RgbImage img{height, width, std::vector<uint8_t>(static_cast<size_t>(height) * width * 3)};
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < 3; ++c)
        img.pixels[(static_cast<size_t>(y) * width + x) * 3 + c] =
            static_cast<uint8_t>(128 + 100 * std::sin(0.07 * (x + 3 * seed) * (c + 1) + 0.11 * y + seed));
  return img;
}

void write_jpeg(const fs::path& path, int height, int width, int seed) {
  fs::create_directories(path.parent_path());
  JpegCodec codec;
  std::ofstream(path, std::ios::binary) << codec.encode(pattern(height, width, seed), 95);
}

void write_grey_jpeg(const fs::path& path, int height, int width) {
  fs::create_directories(path.parent_path());
  std::vector<uint8_t> grey(static_cast<size_t>(height) * width);
  for (size_t i = 0; i < grey.size(); ++i) grey[i] = static_cast<uint8_t>(i * 7);
  tjhandle h = tjInitCompress();
  unsigned char* jpeg = nullptr;
  unsigned long size = 0;
  REQUIRE(tjCompress2(h, grey.data(), width, 0, height, TJPF_GRAY, &jpeg, &size, TJSAMP_GRAY, 90, 0) == 0);
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(jpeg), size);
  tjFree(jpeg);
  tjDestroy(h);
}

void write_png(const fs::path& path, int height, int width, int seed) {
  fs::create_directories(path.parent_path());
  const RgbImage img = pattern(height, width, seed);
  REQUIRE(stbi_write_png(path.c_str(), width, height, 3, img.pixels.data(), width * 3));
}

const std::vector<std::string> kClasses = {"n01", "n02", "n03"};

/// ROOT/train/<class>/: 11 images in all (a grey JPEG, a PNG, a large one that TurboJPEG
/// decodes at 1/2 scale), plus a corrupt JPEG and an empty file in n03; ROOT/val/ flat, 4 images
/// whose classes are, in file order, n02 n01 n03 n02.
void make_train(const fs::path& root) {
  write_jpeg(root / "train/n01/a.JPEG", 40, 60, 1);
  write_jpeg(root / "train/n01/b.JPEG", 70, 50, 2);
  write_grey_jpeg(root / "train/n01/c_grey.JPEG", 36, 48);
  write_jpeg(root / "train/n01/d.JPEG", 100, 140, 3);
  write_jpeg(root / "train/n02/a.JPEG", 33, 33, 4);
  write_png(root / "train/n02/b.png", 45, 38, 5);
  write_jpeg(root / "train/n02/c.JPEG", 64, 80, 6);
  write_jpeg(root / "train/n03/a.JPEG", 50, 90, 7);
  write_jpeg(root / "train/n03/b.JPEG", 48, 48, 8);
  write_jpeg(root / "train/n03/c.JPEG", 81, 41, 9);
  write_jpeg(root / "train/n03/d.JPEG", 32, 40, 10);
  std::string corrupt = read_file((root / "train/n03/a.JPEG").string());
  corrupt = corrupt.substr(0, 20) + std::string(200, 'x');
  write_text((root / "train/n03/e_corrupt.JPEG").string(), corrupt);
  write_text((root / "train/n03/f_empty.JPEG").string(), "");
  write_text((root / "train/n03/notes.txt").string(), "not an image");
}

const std::vector<std::string> kValWnids = {"n02", "n01", "n03", "n02"};
std::string val_name(int i) { return "ILSVRC2012_val_0000000" + std::to_string(i + 1); }

void make_flat_val(const fs::path& dir) {
  for (int i = 0; i < 4; ++i) write_jpeg(dir / (val_name(i) + ".JPEG"), 40 + 5 * i, 52, 20 + i);
}

void make_kaggle(const fs::path& root) {
  make_train(root);
  make_flat_val(root / "val");
  std::string csv = "ImageId,PredictionString\n";
  for (int i = 3; i >= 0; --i) csv += val_name(i) + "," + kValWnids[i] + " 1 2 30 40 " + kValWnids[i] + " 5 6 7 8\n";
  write_text((root / "LOC_val_solution.csv").string(), csv);
}

void make_devkit(const fs::path& root) {
  make_train(root);
  make_flat_val(root / "val");
  write_text((root / "synsets.txt").string(), "n03\nn01\nn02\n");  // the devkit's order, not sorted
  std::string truth;                                               // 1-based positions in synsets.txt
  for (const std::string& w : kValWnids) truth += (w == "n03" ? "1" : w == "n01" ? "2" : "3") + std::string("\n");
  write_text((root / "val/ILSVRC2012_validation_ground_truth.txt").string(), truth);
}

void make_tiny(const fs::path& root) {
  make_train(root);
  std::string annotations;
  for (int i = 0; i < 4; ++i) {
    write_jpeg(root / "val/images" / ("val_" + std::to_string(i) + ".JPEG"), 64, 64, 30 + i);
    annotations += "val_" + std::to_string(i) + ".JPEG\t" + kValWnids[i] + "\t0\t0\t63\t63\n";
  }
  write_text((root / "val/val_annotations.txt").string(), annotations);
}

PackSettings settings_for(const fs::path& root, const fs::path& out, bool raw = false, int threads = 2) {
  PackSettings s;
  s.root = root.string();
  s.out = out.string();
  s.size = 32;
  s.raw = raw;
  s.threads = threads;
  s.progress_every_s = 0;
  return s;
}

PackReport pack(const PackSettings& s) {
  std::ostringstream err;
  return pack_dataset(s, err);
}

std::vector<int32_t> labels_of(const PackFile& p) {
  std::vector<int32_t> labels;
  for (int64_t i = 0; i < p.size(); ++i) labels.push_back(p.label(i));
  return labels;
}

const std::vector<int32_t> kTrainLabels = {0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2};
const std::vector<int32_t> kValLabels = {1, 0, 2, 1};

}  // namespace

TEST_CASE("pack: ImageNet layout with LOC_val_solution.csv, labels in the training classes' order", "[pack]") {
  TempDir dir("pack");
  make_kaggle(dir.file("in"));
  const PackReport report = pack(settings_for(dir.file("in"), dir.file("out")));
  REQUIRE(report.splits.size() == 2);
  CHECK(report.classes == kClasses);
  CHECK(report.splits[0].packed == 11);
  CHECK(report.splits[0].ignored == 1);
  CHECK(report.splits[1].layout == "LOC_val_solution.csv");
  const PackFile train(dir.file("out/train.pack")), val(dir.file("out/val.pack"));
  CHECK(train.classes() == kClasses);
  CHECK(labels_of(train) == kTrainLabels);
  CHECK(labels_of(val) == kValLabels);
  CHECK(train.mode() == Mode::kJpeg);
  for (int64_t i = 0; i < train.size(); ++i) {  // shorter side 32, grey and PNG as RGB
    const RgbImage img = train.decode(i);
    CHECK(std::min(img.height, img.width) == 32);
    CHECK(img.pixels.size() == static_cast<size_t>(img.height) * img.width * 3);
  }
  CHECK(!fs::exists(dir.file("out/train.pack.part")));
  CHECK(!fs::exists(dir.file("out/train.pack.journal")));
}

TEST_CASE("pack: a corrupt JPEG and an empty file are skipped and reported, not fatal", "[pack]") {
  TempDir dir("pack");
  make_kaggle(dir.file("in"));
  htga::cli::PackOptions o;
  o.root = dir.file("in");
  o.out = dir.file("out");
  o.size = 32;
  o.threads = 2;
  std::ostringstream out, err;
  REQUIRE(htga::cli::run_pack(o, out, err) == 0);
  const std::string summary = out.str();
  CHECK_THAT(summary, Catch::Contains("train: 11 of 13 images"));
  CHECK_THAT(summary, Catch::Contains("e_corrupt.JPEG: corrupt image"));
  CHECK_THAT(summary, Catch::Contains("f_empty.JPEG: zero size"));
  CHECK_THAT(summary, Catch::Contains("val: 4 of 4 images"));
}

TEST_CASE("pack: raw mode reads back bit for bit what the same decode and resize give", "[pack]") {
  TempDir dir("pack");
  make_kaggle(dir.file("in"));
  pack(settings_for(dir.file("in"), dir.file("out"), /*raw=*/true));
  const PackFile train(dir.file("out/train.pack"));
  CHECK(train.mode() == Mode::kRaw);
  std::vector<std::string> files;
  for (const char* f : {"n01/a.JPEG", "n01/b.JPEG", "n01/c_grey.JPEG", "n01/d.JPEG", "n02/a.JPEG", "n02/b.png",
                        "n02/c.JPEG", "n03/a.JPEG", "n03/b.JPEG", "n03/c.JPEG", "n03/d.JPEG"})
    files.push_back(dir.file("in/train/") + f);
  REQUIRE(train.size() == static_cast<int64_t>(files.size()));
  JpegCodec codec;
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string bytes = read_file(files[i]);
    const RgbImage direct = resize_shorter(
        decode_image(codec, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), /*min_short=*/32), 32);
    const RgbImage packed = train.decode(static_cast<int64_t>(i));
    INFO(files[i]);
    CHECK(packed.height == direct.height);
    CHECK(packed.width == direct.width);
    CHECK(packed.pixels == direct.pixels);
  }
  // n01/d is 100x140: decoded at 1/2 (50x70), then resized to 32x44.
  CHECK(train.entry(3).height == 32);
  CHECK(train.entry(3).width == 44);
}

TEST_CASE("pack: devkit ground truth with a synset order file, and Tiny-ImageNet's val_annotations.txt", "[pack]") {
  TempDir dir("pack");
  make_devkit(dir.file("devkit"));
  const PackReport devkit = pack(settings_for(dir.file("devkit"), dir.file("out1")));
  CHECK(devkit.splits[1].layout == "ILSVRC2012_validation_ground_truth.txt");
  CHECK(labels_of(PackFile(dir.file("out1/val.pack"))) == kValLabels);
  make_tiny(dir.file("tiny"));
  const PackReport tiny = pack(settings_for(dir.file("tiny"), dir.file("out2")));
  CHECK(tiny.splits[1].layout == "val_annotations.txt");
  CHECK(labels_of(PackFile(dir.file("out2/val.pack"))) == kValLabels);
}

TEST_CASE("pack: a val image of an unknown class is an InputError naming the file; nothing written", "[pack]") {
  TempDir dir("pack");
  make_tiny(dir.file("in"));
  write_text(dir.file("in/val/val_annotations.txt"), "val_0.JPEG\tn09\n val_1.JPEG\tn01\n");
  CHECK_THROWS_MATCHES(
      pack(settings_for(dir.file("in"), dir.file("out"))), htga::InputError,
      Catch::Message(dir.file("in/val/images/val_0.JPEG") + ": class \"n09\" is not one of the training classes"));
  CHECK(!fs::exists(dir.file("out")));
}

TEST_CASE("pack: bad input is an InputError and nothing is written", "[pack]") {
  TempDir dir("pack");
  make_kaggle(dir.file("in"));
  CHECK_THROWS_AS(pack(settings_for(dir.file("missing"), dir.file("out"))), htga::InputError);
  fs::create_directories(dir.file("empty"));
  CHECK_THROWS_WITH(pack(settings_for(dir.file("empty"), dir.file("out"))), Catch::Contains("train: no such folder"));
  write_text(dir.file("a_file"), "x");
  CHECK_THROWS_WITH(pack(settings_for(dir.file("in"), dir.file("a_file/out"))), Catch::Contains("not a folder"));
  htga::cli::PackOptions o;
  o.root = dir.file("in");
  o.out = dir.file("out");
  o.raw = true;
  o.quality = 80;
  std::ostringstream out, err;
  CHECK_THROWS_WITH(htga::cli::run_pack(o, out, err), Catch::Contains("--raw") && Catch::Contains("--quality"));
  CHECK(!fs::exists(dir.file("out")));
}

TEST_CASE("pack: the file is the same for any thread count; a rerun leaves a complete pack alone", "[pack]") {
  TempDir dir("pack");
  make_kaggle(dir.file("in"));
  pack(settings_for(dir.file("in"), dir.file("one"), false, /*threads=*/1));
  const PackReport four = pack(settings_for(dir.file("in"), dir.file("four"), false, /*threads=*/4));
  CHECK(read_file(dir.file("one/train.pack")) == read_file(dir.file("four/train.pack")));
  CHECK(read_file(dir.file("one/val.pack")) == read_file(dir.file("four/val.pack")));
  CHECK(!four.splits[0].up_to_date);
  const PackReport again = pack(settings_for(dir.file("in"), dir.file("four"), false, 3));
  CHECK(again.splits[0].up_to_date);
  CHECK(again.splits[0].packed == 11);
}

TEST_CASE("pack: a pack stopped halfway resumes to the same file as an uninterrupted one", "[pack]") {
  TempDir dir("pack");
  make_kaggle(dir.file("in"));
  pack(settings_for(dir.file("in"), dir.file("whole")));
  PackSettings s = settings_for(dir.file("in"), dir.file("out"), false, 3);
  s.after_image = [](const std::string& split, int64_t done) {
    if (split == "train" && done == 6) htga::experiments::request_stop();
  };
  CHECK_THROWS_AS(pack(s), htga::Interrupted);
  htga::experiments::reset_stop();
  CHECK(fs::exists(dir.file("out/train.pack.part")));
  CHECK(!fs::exists(dir.file("out/train.pack")));
  // A record torn by a crash at the journal's end is dropped on resume.
  std::ofstream(dir.file("out/train.pack.journal"), std::ios::app) << "torn";
  s.after_image = nullptr;
  s.threads = 1;
  const PackReport resumed = pack(s);
  CHECK(resumed.splits[0].resumed_at == 6);
  CHECK(resumed.splits[0].packed == 11);
  CHECK(resumed.splits[0].skipped.size() == 2);
  CHECK(read_file(dir.file("out/train.pack")) == read_file(dir.file("whole/train.pack")));
  CHECK(read_file(dir.file("out/val.pack")) == read_file(dir.file("whole/val.pack")));
}

TEST_CASE("pack: a truncated or corrupt pack is refused before anything is read from it", "[pack]") {
  TempDir dir("pack");
  make_kaggle(dir.file("in"));
  pack(settings_for(dir.file("in"), dir.file("out")));
  const std::string whole = read_file(dir.file("out/train.pack"));
  write_text(dir.file("cut.pack"), whole.substr(0, whole.size() - 10));
  CHECK_THROWS_MATCHES(PackFile(dir.file("cut.pack")), htga::InputError,
                       Catch::Message(dir.file("cut.pack") + ": truncated: " + std::to_string(whole.size() - 10) +
                                      " bytes, the header says " + std::to_string(whole.size())));
  write_text(dir.file("tiny.pack"), whole.substr(0, 30));
  CHECK_THROWS_WITH(PackFile(dir.file("tiny.pack")), Catch::StartsWith(dir.file("tiny.pack") + ": truncated"));
  std::string flipped = whole;
  flipped[flipped.size() - 5] ^= 0x40;  // inside the index
  write_text(dir.file("flipped.pack"), flipped);
  CHECK_THROWS_WITH(PackFile(dir.file("flipped.pack")), Catch::Contains("corrupt: the index's checksum"));
  write_text(dir.file("other.pack"), std::string(100, 'x'));
  CHECK_THROWS_WITH(PackFile(dir.file("other.pack")), Catch::Contains("not an htga pack file"));
}

namespace {

/// Draws given in advance: uniform() and below() take the next value of their list.
struct ScriptedRng {
  std::vector<double> uniforms;
  std::vector<int64_t> integers;
  size_t u = 0, k = 0;
  double uniform() { return uniforms.at(u++); }
  int64_t below(int64_t n) {
    const int64_t v = integers.at(k++);
    REQUIRE(v < n);
    return v;
  }
};

}  // namespace

TEST_CASE("random-resized-crop: hand-computed boxes, the fallback, and bounds", "[pack]") {
  // 100x100, area fraction 0.08 + 0.92 * 0.5 = 0.54, ratio exp(0) = 1: w = h = round(sqrt(5400))
  // = round(73.48) = 73; top and left drawn from 0..27.
  ScriptedRng square{{0.5, 0.5}, {10, 27}};
  CHECK(random_resized_crop_box(100, 100, square) == CropBox{10, 27, 73, 73});
  // 200 high, 100 wide, fraction 1, ratio 4/3 (u = 1 - tiny): w = round(sqrt(20000 * 4/3)) = 163 >
  // 100 rejected; then fraction 0.08 (u = 0), ratio 3/4 (u = 0): w = round(sqrt(1600 * 0.75)) =
  // round(34.64) = 35, h = round(sqrt(1600 / 0.75)) = round(46.19) = 46.
  ScriptedRng tall{{1.0 - 1e-12, 1.0 - 1e-12, 0.0, 0.0}, {0, 65}};
  CHECK(random_resized_crop_box(200, 100, tall) == CropBox{0, 65, 46, 35});
  // 10 high, 1000 wide: every draw needs h >= sqrt(800 * 3/4) > 10, so the centre fallback with
  // the ratio clamped to 4/3: h = 10, w = round(13.33) = 13, left = (1000 - 13) / 2 = 493.
  ImageRng rng(1, 2, 3);
  CHECK(random_resized_crop_box(10, 1000, rng) == CropBox{0, 493, 10, 13});
  CHECK(random_resized_crop_box(1000, 10, rng) == CropBox{493, 0, 13, 10});
  ImageRng many(7, 0, 0);
  for (int t = 0; t < 2000; ++t) {
    const int h = 20 + t % 300, w = 20 + (t * 7) % 300;
    const CropBox b = random_resized_crop_box(h, w, many);
    REQUIRE(b.height > 0);
    REQUIRE(b.width > 0);
    REQUIRE(b.top >= 0);
    REQUIRE(b.left >= 0);
    REQUIRE(b.top + b.height <= h);
    REQUIRE(b.left + b.width <= w);
    const double ratio = static_cast<double>(b.width) / b.height;
    REQUIRE(ratio > 0.75 * 0.8);  // 3/4..4/3 up to the rounding of small boxes
    REQUIRE(ratio < 4.0 / 3.0 * 1.25);
  }
}

TEST_CASE("val transform: Resize(crop / 0.875) then the centre crop", "[pack]") {
  CHECK(val_resize_size(224) == 256);
  CHECK(val_resize_size(56) == 64);
  CHECK(center_crop_box(256, 341, 224) == CropBox{16, 58, 224, 224});  // round(58.5) = 58, half to even
  const RgbImage img = pattern(64, 90, 3);
  RgbImage scratch;
  std::vector<uint8_t> out(56 * 56 * 3);
  resize_center_crop(img, 56, scratch, out.data());
  // 64 x 90 is already 64 on its shorter side: a plain crop at top 4, left round(17) = 17.
  for (int y = 0; y < 56; ++y)
    REQUIRE(std::equal(out.begin() + y * 56 * 3, out.begin() + (y + 1) * 56 * 3,
                       img.pixels.begin() + ((y + 4) * 90 + 17) * 3));
}

TEST_CASE("decode: a CMYK (YCCK) JPEG comes out as RGB, Adobe's inverted convention", "[pack]") {
  // Constant C, M, Y, K stored inverted (255 = no ink): R = C * K / 255 and so on.
  const int h = 16, w = 16;
  std::vector<uint8_t> cmyk(h * w * 4);
  for (int i = 0; i < h * w; ++i) {
    cmyk[4 * i] = 255;
    cmyk[4 * i + 1] = 128;
    cmyk[4 * i + 2] = 0;
    cmyk[4 * i + 3] = 200;
  }
  tjhandle th = tjInitCompress();
  unsigned char* jpeg = nullptr;
  unsigned long size = 0;
  REQUIRE(tjCompress2(th, cmyk.data(), w, 0, h, TJPF_CMYK, &jpeg, &size, TJSAMP_444, 100, 0) == 0);
  JpegCodec codec;
  const RgbImage rgb = decode_image(codec, jpeg, size);
  tjFree(jpeg);
  tjDestroy(th);
  REQUIRE(rgb.height == h);
  REQUIRE(rgb.width == w);
  CHECK(std::abs(rgb.pixels[0] - 200) <= 2);  // 255 * 200 / 255
  CHECK(std::abs(rgb.pixels[1] - 100) <= 2);  // 128 * 200 / 255 = 100.4
  CHECK(rgb.pixels[2] <= 2);
}

TEST_CASE("resize: constant images stay constant, and an integer downscale averages", "[pack]") {
  RgbImage flat{7, 9, std::vector<uint8_t>(7 * 9 * 3, 77)};
  const RgbImage small = resize_shorter(flat, 3), large = resize_shorter(flat, 20);
  CHECK(small.height == 3);
  CHECK(small.width == 3);  // int(3 * 9 / 7)
  CHECK(std::all_of(small.pixels.begin(), small.pixels.end(), [](uint8_t v) { return v == 77; }));
  CHECK(std::all_of(large.pixels.begin(), large.pixels.end(), [](uint8_t v) { return v == 77; }));
  // 2x2 -> 1x1: the triangle filter of support 2 weighs the four pixels equally.
  RgbImage four{2, 2, {0, 0, 0, 100, 100, 100, 50, 50, 50, 10, 10, 10}};
  const RgbImage one = resize_shorter(four, 1);
  CHECK(one.pixels == std::vector<uint8_t>{40, 40, 40});
}

TEST_CASE("BatchStream: the same batches for 1 and 4 threads, reproducible per (seed, epoch)", "[pack]") {
  TempDir dir("pack");
  make_kaggle(dir.file("in"));
  pack(settings_for(dir.file("in"), dir.file("out")));
  const PackFile train(dir.file("out/train.pack"));
  auto run = [&](int threads, int64_t epoch, bool is_train) {
    BatchStreamOptions o;
    o.batch_size = 4;
    o.crop = 24;
    o.train = is_train;
    o.seed = 5;
    o.epoch = epoch;
    o.loader_threads = threads;
    o.ring = 2;
    BatchStream stream(train, o);
    std::vector<uint8_t> pixels;
    std::vector<int64_t> labels;
    int64_t batches = 0;
    while (auto b = stream.next()) {
      CHECK(b->index == batches++);
      pixels.insert(pixels.end(), b->pixels, b->pixels + b->size * 24 * 24 * 3);
      labels.insert(labels.end(), b->labels, b->labels + b->size);
      stream.release(*b);
    }
    CHECK(batches == 3);  // 11 images: 4 + 4 + 3
    for (size_t p = 0; p < labels.size(); ++p) CHECK(labels[p] == train.label(stream.order()[p]));
    return std::make_pair(pixels, labels);
  };
  const auto one = run(1, 0, true), four = run(4, 0, true), next_epoch = run(4, 1, true);
  CHECK(one == four);
  CHECK(one.first != next_epoch.first);
  std::multiset<int64_t> a(one.second.begin(), one.second.end()), b(next_epoch.second.begin(), next_epoch.second.end());
  CHECK(a == b);  // the same images, in another order
  CHECK(run(1, 0, false) == run(3, 0, false));
}

TEST_CASE("BatchStream: val batches are the centre crops in order; a full ring refuses next()", "[pack]") {
  TempDir dir("pack");
  make_kaggle(dir.file("in"));
  pack(settings_for(dir.file("in"), dir.file("out")));
  const PackFile val(dir.file("out/val.pack"));
  BatchStreamOptions o;
  o.batch_size = 1;
  o.crop = 28;
  o.train = false;
  o.shuffle = false;
  o.indices = {3, 1, 2};
  o.loader_threads = 2;
  o.ring = 2;
  BatchStream stream(val, o);
  const auto first = stream.next(), second = stream.next();
  REQUIRE(first);
  REQUIRE(second);
  CHECK_THROWS_AS(stream.next(), std::logic_error);  // both buffers held
  RgbImage scratch;
  std::vector<uint8_t> expected(28 * 28 * 3);
  resize_center_crop(val.decode(3), 28, scratch, expected.data());
  CHECK(std::equal(expected.begin(), expected.end(), first->pixels));
  CHECK(first->labels[0] == val.label(3));
  CHECK(second->labels[0] == val.label(1));
  stream.release(*first);
  stream.release(*second);
  const auto third = stream.next();
  REQUIRE(third);
  CHECK(third->labels[0] == val.label(2));
  stream.release(*third);
  CHECK(!stream.next());
}

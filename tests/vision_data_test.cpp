// CIFAR binary batches, image folders, the decoded-dataset cache, validation splits and
// low-data subsets, batch augmentation; and a tiny CIFAR-100 grid through the runner (val rows,
// top-5, the final flags).

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "cli/progress.h"
#include "experiments/data/augment.h"
#include "experiments/data/cache.h"
#include "experiments/data/cifar.h"
#include "experiments/data/dataset.h"
#include "experiments/data/image_folder.h"
#include "experiments/error.h"
#include "experiments/grid.h"
#include "experiments/runner.h"
#include "storage/store.h"
#include "test_util.h"

#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

using htga::InputError;
using htga::data::CifarFormat;
using htga::test::idx_bytes;
using htga::test::TempDir;
using htga::test::write_bytes;
using nlohmann::json;

namespace {

/// Pixel value of record i, channel c, row y, column x in the files the tests write.
uint8_t pixel(int64_t i, int64_t c, int64_t y, int64_t x) { return static_cast<uint8_t>(i * 7 + c * 50 + y * 3 + x); }

/// A CIFAR record file: `labels[i]` holds the label byte(s) of record i.
std::vector<uint8_t> cifar_bytes(const std::vector<std::vector<uint8_t>>& labels, int64_t first = 0) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i < labels.size(); ++i) {
    out.insert(out.end(), labels[i].begin(), labels[i].end());
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < 32; ++y)
        for (int64_t x = 0; x < 32; ++x) out.push_back(pixel(first + static_cast<int64_t>(i), c, y, x));
  }
  return out;
}

/// A CIFAR-10 folder: 5 training batches of `per_batch` records, labels cycling 0..9, and a
/// test batch of 10 records.
void write_cifar10(const std::string& dir, int per_batch) {
  for (int b = 1; b <= 5; ++b) {
    std::vector<std::vector<uint8_t>> labels;
    for (int i = 0; i < per_batch; ++i) labels.push_back({static_cast<uint8_t>(((b - 1) * per_batch + i) % 10)});
    write_bytes(dir + "/data_batch_" + std::to_string(b) + ".bin", cifar_bytes(labels, (b - 1) * per_batch), false);
  }
  std::vector<std::vector<uint8_t>> test;
  for (int i = 0; i < 10; ++i) test.push_back({static_cast<uint8_t>(i)});
  write_bytes(dir + "/test_batch.bin", cifar_bytes(test), false);
}

/// A CIFAR-100 folder: `per_class` training and one test record per fine class; coarse = fine / 5.
void write_cifar100(const std::string& dir, int per_class) {
  std::vector<std::vector<uint8_t>> train, test;
  for (int k = 0; k < per_class; ++k)
    for (int f = 0; f < 100; ++f) train.push_back({static_cast<uint8_t>(f / 5), static_cast<uint8_t>(f)});
  for (int f = 0; f < 100; ++f) test.push_back({static_cast<uint8_t>(f / 5), static_cast<uint8_t>(f)});
  write_bytes(dir + "/train.bin", cifar_bytes(train), false);
  write_bytes(dir + "/test.bin", cifar_bytes(test), false);
}

/// A PNG of w x h pixels, `channels` per pixel, value(x, y, c).
template <typename F>
void write_png(const std::string& path, int w, int h, int channels, F value) {
  std::vector<uint8_t> px;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < channels; ++c) px.push_back(static_cast<uint8_t>(value(x, y, c)));
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  REQUIRE(stbi_write_png(path.c_str(), w, h, channels, px.data(), w * channels) != 0);
}

std::vector<int64_t> vec(const torch::Tensor& t) {
  auto c = t.to(torch::kInt64).contiguous();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("CIFAR-10 binary batches decode to exact pixels and labels", "[data]") {
  TempDir dir("cifar10");
  const std::string path = dir.file("data_batch_1.bin");
  write_bytes(path, cifar_bytes({{3}, {9}, {0}}), false);
  auto s = htga::data::read_cifar_file(path, CifarFormat::kCifar10);
  REQUIRE(s.images.sizes() == torch::IntArrayRef({3, 3, 32, 32}));
  CHECK(vec(s.labels) == std::vector<int64_t>{3, 9, 0});
  // Channel-major records: red plane, green plane, blue plane, each row by row.
  for (int64_t i : {0, 2})
    for (int64_t c : {0, 1, 2})
      for (auto [y, x] : {std::pair<int64_t, int64_t>{0, 0}, {5, 17}, {31, 31}})
        CHECK(s.images[i][c][y][x].item<int64_t>() == pixel(i, c, y, x));
}

TEST_CASE("CIFAR-100 records keep the fine or the coarse label", "[data]") {
  TempDir dir("cifar100");
  const std::string path = dir.file("train.bin");
  write_bytes(path, cifar_bytes({{19, 99}, {0, 3}}), false);
  CHECK(vec(htga::data::read_cifar_file(path, CifarFormat::kCifar100Fine).labels) == std::vector<int64_t>{99, 3});
  CHECK(vec(htga::data::read_cifar_file(path, CifarFormat::kCifar100Coarse).labels) == std::vector<int64_t>{19, 0});
  auto s = htga::data::read_cifar_file(path, CifarFormat::kCifar100Fine);
  CHECK(s.images[1][2][31][0].item<int64_t>() == pixel(1, 2, 31, 0));
}

TEST_CASE("damaged CIFAR files are errors that name the file", "[data]") {
  TempDir dir("cifarbad");
  const std::string path = dir.file("data_batch_1.bin");
  auto good = cifar_bytes({{1}, {2}});

  auto truncated = good;
  truncated.resize(good.size() - 100);
  write_bytes(path, truncated, false);
  CHECK(error_of([&] { htga::data::read_cifar_file(path, CifarFormat::kCifar10); }) ==
        path + ": truncated: 6046 bytes is not a whole number of 3073-byte CIFAR-10 records");

  // A CIFAR-10 file read as CIFAR-100 is not a whole number of 3074-byte records either.
  write_bytes(path, good, false);
  CHECK(error_of([&] { htga::data::read_cifar_file(path, CifarFormat::kCifar100Fine); }) ==
        path + ": truncated: 6146 bytes is not a whole number of 3074-byte CIFAR-100 records");

  write_bytes(path, cifar_bytes({{1}, {10}}), false);
  CHECK(error_of([&] { htga::data::read_cifar_file(path, CifarFormat::kCifar10); }) ==
        path + ": label 10 at record 1 is outside 0..9");

  write_bytes(path, cifar_bytes({{20, 5}}), false);
  CHECK(error_of([&] { htga::data::read_cifar_file(path, CifarFormat::kCifar100Coarse); }) ==
        path + ": coarse label 20 at record 0 is outside 0..19");
  write_bytes(path, cifar_bytes({{2, 100}}), false);
  CHECK(error_of([&] { htga::data::read_cifar_file(path, CifarFormat::kCifar100Fine); }) ==
        path + ": fine label 100 at record 0 is outside 0..99");

  write_bytes(path, {}, false);
  CHECK(error_of([&] { htga::data::read_cifar_file(path, CifarFormat::kCifar10); }) == path + ": empty file");
  CHECK(error_of([&] { htga::data::read_cifar_file(dir.file("nope.bin"), CifarFormat::kCifar10); }) ==
        dir.file("nope.bin") + ": cannot open");

  // A folder without the batch files is found at grid validation, naming the first one missing.
  CHECK(error_of([&] {
          htga::data::check_available({{"name", "cifar10"}, {"path", dir.str()}});
        }) == dir.str() + ": missing data_batch_2.bin (CIFAR-10 binary version)");
}

TEST_CASE("a CIFAR-10 folder loads whole, normalised per channel, from the archive's sub-folder", "[data]") {
  TempDir dir("cifar10load");
  const std::string sub = dir.file("cifar-10-batches-bin");
  std::filesystem::create_directories(sub);
  write_cifar10(sub, 4);  // 20 training records, 2 per class
  auto d = htga::data::load_dataset({{"name", "cifar10"}, {"path", dir.str()}}, torch::kCPU);
  CHECK(d.num_classes == 10);
  REQUIRE(d.train_x.sizes() == torch::IntArrayRef({20, 3, 32, 32}));
  CHECK(d.test_x.sizes() == torch::IntArrayRef({10, 3, 32, 32}));
  CHECK(d.val_x.size(0) == 0);
  CHECK(d.train_y.bincount().eq(2).all().item<bool>());
  CHECK(d.augment == "none");  // load_dataset's default; the registry's for cifar10 is crop-flip
  CHECK(d.train_x.dtype() == torch::kUInt8);
  const auto x = htga::data::normalize_pixels(d.train_x, d.pixel_table);
  auto per_channel = x.transpose(0, 1).reshape({3, -1});
  CHECK(per_channel.mean(1).abs().max().item<double>() < 1e-5);
  CHECK((per_channel.std(1) - 1).abs().max().item<double>() < 1e-4);
  // Record 7 of the training set came from data_batch_2 (records 4..7): its pixels, denormalised.
  const double red = x[7][0][2][3].item<double>() * d.std[0] + d.mean[0];
  CHECK(red * 255 == Approx(pixel(7, 0, 2, 3)).margin(1e-3));
  CHECK(d.train_y[7].item<int64_t>() == 7);
}

TEST_CASE("a validation split is carved from the training set, stratified and disjoint", "[data]") {
  std::vector<int64_t> labels;
  for (int i = 0; i < 600; ++i) labels.push_back(i % 3 == 0 ? 0 : (i % 3 == 1 ? 1 : 2));
  auto r = htga::data::split_rows(labels, 3, /*val_size=*/30, /*train_size=*/60, /*train_fraction=*/1.0, /*seed=*/5);
  REQUIRE(r.val.size() == 30);
  REQUIRE(r.train.size() == 60);
  int val_counts[3] = {0, 0, 0}, train_counts[3] = {0, 0, 0};
  for (auto i : r.val) ++val_counts[labels[i]];
  for (auto i : r.train) ++train_counts[labels[i]];
  CHECK(val_counts[0] == 10);
  CHECK(val_counts[2] == 10);
  CHECK(train_counts[0] == 20);
  CHECK(train_counts[1] == 20);
  std::set<int64_t> val(r.val.begin(), r.val.end());
  for (auto i : r.train) CHECK(val.count(i) == 0);
  CHECK(std::is_sorted(r.train.begin(), r.train.end()));
  // Same seed, same rows; another seed, other rows.
  auto again = htga::data::split_rows(labels, 3, 30, 60, 1.0, 5);
  CHECK(again.val == r.val);
  CHECK(again.train == r.train);
  auto other = htga::data::split_rows(labels, 3, 30, 60, 1.0, 6);
  CHECK(other.val != r.val);
  // Without validation the training rows are the stratified subset of the whole set.
  CHECK(htga::data::split_rows(labels, 3, 0, 60, 1.0, 5).train == htga::data::stratified_subset(labels, 3, 60, 5));
  // All of the rest when neither train_size nor train_fraction is set.
  CHECK(htga::data::split_rows(labels, 3, 30, 0, 1.0, 5).train.size() == 570);
  CHECK(error_of([&] { htga::data::split_rows(labels, 3, 601, 0, 1.0, 5); }) ==
        "val_size 601 is larger than the training set (600)");
  // What validation leaves is what training can take: the message says which setting to change.
  CHECK(error_of([&] { htga::data::split_rows(labels, 3, 600, 60, 1.0, 5); }) ==
        "val_size 600 leaves 0 of the 600 training examples for training, fewer than train_size 60");
  CHECK(error_of([&] { htga::data::split_rows(labels, 3, 600, 0, 1.0, 5); }) ==
        "val_size 600 leaves 0 of the 600 training examples for training");
  CHECK(error_of([&] { htga::data::split_rows(labels, 3, 550, 60, 1.0, 5); }) ==
        "val_size 550 leaves 50 of the 600 training examples for training, fewer than train_size 60");
}

TEST_CASE("train_fraction keeps the class proportions", "[data]") {
  std::vector<int64_t> labels;
  for (int i = 0; i < 100; ++i) labels.push_back(i < 80 ? 0 : 1);  // 80 of class 0, 20 of class 1
  auto rows = htga::data::stratified_fraction(labels, 2, 0.25, 1);
  int counts[2] = {0, 0};
  for (auto i : rows) ++counts[labels[i]];
  CHECK(counts[0] == 20);
  CHECK(counts[1] == 5);
  CHECK(htga::data::stratified_fraction(labels, 2, 0.25, 1) == rows);
  CHECK(htga::data::stratified_fraction(labels, 2, 0.25, 2) != rows);
  CHECK(htga::data::stratified_fraction(labels, 2, 0.001, 1).size() == 2);  // at least one per class
  CHECK(error_of([&] {
          htga::data::check_available({{"name", "fashion-mnist"},
                                       {"path", "/nonexistent"},  // reported before the folder
                                       {"train_size", 100},
                                       {"train_fraction", 0.5}});
        }) == "train_size and train_fraction both set: give one of them");
}

TEST_CASE("mnist reads the IDX folder layout; the validation split is normalised with training statistics", "[data]") {
  TempDir dir("mnist");
  std::vector<uint8_t> images, labels;
  for (int i = 0; i < 30; ++i) {
    labels.push_back(static_cast<uint8_t>(i % 10));
    for (int p = 0; p < 4; ++p) images.push_back(static_cast<uint8_t>(i * 8 + p));
  }
  write_bytes(dir.file("train-images-idx3-ubyte"), idx_bytes({30, 2, 2}, images), false);
  write_bytes(dir.file("train-labels-idx1-ubyte"), idx_bytes({30}, labels), false);
  write_bytes(dir.file("t10k-images-idx3-ubyte.gz"),
              idx_bytes({10, 2, 2}, std::vector<uint8_t>(images.begin(), images.begin() + 40)), true);
  write_bytes(dir.file("t10k-labels-idx1-ubyte.gz"),
              idx_bytes({10}, std::vector<uint8_t>(labels.begin(), labels.begin() + 10)), true);
  auto d = htga::data::load_dataset({{"name", "mnist"}, {"path", dir.str()}, {"val_size", 10}}, torch::kCPU);
  CHECK(d.train_size() == 20);
  CHECK(d.val_x.sizes() == torch::IntArrayRef({10, 1, 2, 2}));
  CHECK(d.val_y.bincount().eq(1).all().item<bool>());
  // Most rows train: they are read through a row map, not copied. Training and validation rows
  // are disjoint and together every decoded image (image i's first pixel is 8 i).
  CHECK(d.train_rows.defined());
  const auto train = d.train_images(torch::arange(20, torch::kInt64));
  auto firsts = torch::cat({train.select(3, 0).select(2, 0).flatten(), d.val_x.select(3, 0).select(2, 0).flatten()});
  CHECK(torch::equal(std::get<0>(firsts.to(torch::kInt64).sort()), torch::arange(0, 240, 8, torch::kInt64)));
  CHECK(torch::equal(d.train_y,
                     train.select(3, 0).select(2, 0).flatten().to(torch::kInt64).div(8, "floor").remainder(10)));
  CHECK(htga::data::normalize_pixels(train, d.pixel_table).mean().item<double>() == Approx(0).margin(1e-5));
  // Validation pixels use the training mean and std: denormalised they are the raw bytes.
  auto raw = (htga::data::normalize_pixels(d.val_x, d.pixel_table) * d.std[0] + d.mean[0]) * 255;
  CHECK((raw - raw.round()).abs().max().item<double>() < 1e-3);
}

TEST_CASE("image folders decode, crop the centre, resize and number classes by name", "[data]") {
  TempDir dir("imgfolder");
  const std::string root = dir.str();
  // Uniform colours per class; a 12x8 image whose centre 8x8 square is one colour and its
  // sides another (the crop removes them); a grey class.
  write_png(root + "/train/b_cat/1.png", 8, 8, 3, [](int, int, int c) { return 10 + c; });
  write_png(root + "/train/b_cat/2.PNG", 12, 8, 3, [](int x, int, int c) { return x < 2 || x >= 10 ? 250 : 20 + c; });
  write_png(root + "/train/a_dog/1.png", 8, 8, 1, [](int, int, int) { return 200; });
  write_png(root + "/val/a_dog/9.png", 8, 8, 3, [](int x, int y, int c) { return x * 16 + y + c; });
  htga::test::write_text(root + "/train/a_dog/notes.txt", "not an image");  // ignored

  htga::data::ImageFolderOptions o;
  o.size = 8;
  auto d = htga::data::load_image_folder(root, o);
  CHECK(d.num_classes == 2);
  REQUIRE(d.train.images.sizes() == torch::IntArrayRef({3, 3, 8, 8}));
  CHECK(vec(d.train.labels) == std::vector<int64_t>{0, 1, 1});  // a_dog, then b_cat's files sorted
  CHECK(d.train.images[0].eq(200).all().item<bool>());          // grey expanded to RGB
  for (int64_t c = 0; c < 3; ++c) {
    CHECK(d.train.images[1][c].eq(10 + c).all().item<bool>());
    CHECK(d.train.images[2][c].eq(20 + c).all().item<bool>());  // the 250 sides cropped away
  }
  CHECK(d.test.images[0][1][3][5].item<int64_t>() == 5 * 16 + 3 + 1);  // [c][y][x] of value(x, y, c)

  // Resized to 4x4, a uniform image stays uniform; grey keeps one channel.
  o.size = 4;
  o.channels = 1;
  auto small = htga::data::load_image_folder(root, o);
  REQUIRE(small.train.images.sizes() == torch::IntArrayRef({3, 1, 4, 4}));
  CHECK(small.train.images[0].eq(200).all().item<bool>());

  // A file that is not an image, and a test class unknown to training, are errors.
  htga::test::write_text(root + "/train/b_cat/3.png", "garbage");
  CHECK(error_of([&] {
          htga::data::load_image_folder(root, o);
        }).rfind(root + "/train/b_cat/3.png: cannot decode image: ", 0) == 0);
  std::filesystem::remove(root + "/train/b_cat/3.png");
  write_png(root + "/val/zebra/1.png", 8, 8, 3, [](int, int, int) { return 0; });
  CHECK(error_of([&] { htga::data::list_image_folder(root); }) ==
        root + "/val/zebra: class \"zebra\" is not a class of " + root + "/train");
  std::filesystem::remove_all(root + "/val");
  CHECK(error_of([&] {
          htga::data::check_available({{"name", "image-folder"}, {"path", root}});
        }) == root + ": missing val/ or test/ (one sub-folder per class)");
}

TEST_CASE("the cache holds a decoded dataset and is rebuilt when a source file changes", "[data]") {
  TempDir dir("cache");
  const std::string data = dir.file("cifar");
  std::filesystem::create_directories(data);
  write_cifar10(data, 2);
  const json cfg = {{"name", "cifar10"}, {"path", data}, {"val_size", 2}};
  htga::data::LoadOptions o;
  o.cache_dir = dir.file("cache");

  auto first = htga::data::load_dataset(cfg, torch::kCPU, o);
  CHECK(first.cache_note.rfind("written " + o.cache_dir + "/cifar10-", 0) == 0);
  auto second = htga::data::load_dataset(cfg, torch::kCPU, o);
  CHECK(second.cache_note.rfind("read ", 0) == 0);
  CHECK(torch::equal(first.train_x, second.train_x));
  CHECK(torch::equal(first.val_y, second.val_y));
  CHECK(torch::equal(first.test_x, second.test_x));

  // A changed source file (another size) makes the cache stale.
  write_bytes(data + "/test_batch.bin", cifar_bytes({{1}, {2}, {3}}), false);
  auto third = htga::data::load_dataset(cfg, torch::kCPU, o);
  CHECK(third.cache_note.find("(made from other files or settings)") != std::string::npos);
  CHECK(third.test_x.size(0) == 3);

  // A truncated or foreign cache file is reported and rewritten, never trusted.
  const std::string path = third.cache_note.substr(std::string("rewritten ").size(),
                                                   third.cache_note.find(" (") - std::string("rewritten ").size());
  const auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size - 9);
  std::string why;
  htga::data::RawDataset raw = htga::data::decode_dataset(cfg);
  CHECK_FALSE(htga::data::read_cache(path, "any key", &why).has_value());
  CHECK(why == "made from other files or settings");
  auto fourth = htga::data::load_dataset(cfg, torch::kCPU, o);
  CHECK(fourth.cache_note.find(path + ": ") != std::string::npos);
  CHECK(torch::equal(fourth.test_x, third.test_x));
  CHECK(std::filesystem::file_size(path) == size);

  // Round trip of the raw format.
  htga::data::write_cache(dir.file("x.bin"), "k", raw);
  auto back = htga::data::read_cache(dir.file("x.bin"), "k", &why);
  REQUIRE(back.has_value());
  CHECK(torch::equal(back->train.images, raw.train.images));
  CHECK(torch::equal(back->train.labels, raw.train.labels));
  CHECK(back->num_classes == 10);
  write_bytes(dir.file("y.bin"), {'n', 'o', 'p', 'e'}, false);
  CHECK_FALSE(htga::data::read_cache(dir.file("y.bin"), "k", &why).has_value());
  CHECK(why == dir.file("y.bin") + ": not an htga cache file");
  write_bytes(dir.file("empty.bin"), {}, false);
  CHECK_FALSE(htga::data::read_cache(dir.file("empty.bin"), "k", &why).has_value());
  CHECK(why == dir.file("empty.bin") + ": not an htga cache file");
}

TEST_CASE("a large cache file is checked in parallel chunks and its images outlive the file", "[data]") {
  TempDir dir("bigcache");
  htga::data::RawDataset raw;
  raw.num_classes = 10;
  // 13 MB of pixels: four 4 MB checksum chunks, the last one partial.
  raw.train.images = torch::randint(0, 256, {200, 3, 128, 128}, torch::kUInt8);
  raw.train.labels = torch::randint(0, 10, {200}, torch::kInt64);
  raw.test.images = torch::randint(0, 256, {7, 3, 128, 128}, torch::kUInt8);
  raw.test.labels = torch::randint(0, 10, {7}, torch::kInt64);
  const std::string path = dir.file("big.bin");
  htga::data::write_cache(path, "k", raw);
  std::string why;
  auto back = htga::data::read_cache(path, "k", &why);
  REQUIRE(back.has_value());
  // The images view the mapped file; removing the file leaves them readable.
  std::filesystem::remove(path);
  CHECK(torch::equal(back->train.images, raw.train.images));
  CHECK(torch::equal(back->test.images, raw.test.images));
  CHECK(torch::equal(back->train.labels, raw.train.labels));

  // One byte changed in place in the third chunk: refused by the checksum.
  htga::data::write_cache(path, "k", raw);
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(9 << 20);
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x10);
    f.seekp(9 << 20);
    f.write(&c, 1);
  }
  CHECK_FALSE(htga::data::read_cache(path, "k", &why).has_value());
  CHECK(why == path + ": content does not match its checksum");
}

TEST_CASE("crop and flip move exact pixels; random draws are reproducible", "[data]") {
  auto x = torch::arange(1, 10, torch::kFloat32).view({1, 1, 3, 3});  // rows 1 2 3 / 4 5 6 / 7 8 9
  auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  auto no = torch::zeros({1}, torch::kBool), yes = torch::ones({1}, torch::kBool);
  // Offset (0, 0) with padding 1: the crop starts in the zero border.
  auto a = htga::data::crop_flip(x, 1, torch::zeros({1}, i64), torch::zeros({1}, i64), no);
  CHECK(torch::equal(a.flatten(), torch::tensor({0, 0, 0, 0, 1, 2, 0, 4, 5}, torch::kFloat32)));
  // Offset (1, 1) is the image itself; flipped, its mirror.
  auto b = htga::data::crop_flip(x, 1, torch::ones({1}, i64), torch::ones({1}, i64), yes);
  CHECK(torch::equal(b, x.flip(3)));
  // Offset (2, 0): shifted up by one row, left border in.
  auto c = htga::data::crop_flip(x, 1, torch::full({1}, 2, i64), torch::zeros({1}, i64), no);
  CHECK(torch::equal(c.flatten(), torch::tensor({0, 4, 5, 0, 7, 8, 0, 0, 0}, torch::kFloat32)));

  auto batch = torch::randn({64, 3, 8, 8});
  auto g1 = at::detail::createCPUGenerator(3), g2 = at::detail::createCPUGenerator(3);
  auto r1 = htga::data::random_crop_flip(batch, 4, g1);
  CHECK(torch::equal(r1, htga::data::random_crop_flip(batch, 4, g2)));
  CHECK(r1.sizes() == batch.sizes());
  // Without padding each image is itself or its mirror, and both occur.
  auto r0 = htga::data::random_crop_flip(batch, 0, g1);
  int same = 0, mirrored = 0;
  for (int64_t i = 0; i < 64; ++i) {
    same += torch::equal(r0[i], batch[i]);
    mirrored += torch::equal(r0[i], batch[i].flip(2));
  }
  CHECK(same + mirrored == 64);
  CHECK(same > 10);
  CHECK(mirrored > 10);
  CHECK(torch::equal(htga::data::augment_batch(batch, "none", g1), batch));
}

TEST_CASE("a CIFAR-100 grid records validation rows, top-5 and final flags", "[data]") {
  TempDir dir("cifar100grid");
  const std::string data = dir.file("c100");
  std::filesystem::create_directories(data);
  write_cifar100(data, 2);  // 200 training records, 100 test records
  const std::string grid = dir.file("g.json");
  htga::test::write_text(grid, json{{"name", "c100"},
                                    {"defaults", {{"epochs", 2}, {"batch_size", 50}, {"device", "cpu"}}},
                                    {"datasets", {{{"name", "cifar100"}, {"path", data}, {"val_size", 100}}}},
                                    {"models", {{{"name", "cnn"}, {"channels", {4}}, {"hidden", {8}}}}},
                                    {"optimizers", {{{"name", "sgd-clip"}, {"lr", 0.05}}}}}
                                   .dump());
  htga::experiments::RunOptions o;
  o.grid_path = grid;
  o.db_path = dir.file("r.db");
  std::ostringstream progress_text;
  htga::cli::LineProgress progress(progress_text);
  auto summary = htga::experiments::run_grid(o, progress);
  INFO(progress_text.str());
  REQUIRE(summary.finished == 1);
  CHECK(progress_text.str().find("(100 train, 100 val, 100 test)") != std::string::npos);
  CHECK(std::filesystem::is_directory(dir.file("htga-data-cache")));  // beside the database

  htga::storage::Store store(o.db_path);
  auto runs = store.runs();
  REQUIRE(runs.size() == 1);
  auto evals = store.evals(runs[0].id);
  std::map<std::string, int> count, finals;
  for (const auto& e : evals) {
    ++count[e.split];
    finals[e.split] += e.final;
    CHECK(e.top5 >= e.acc);  // 100 classes: top-5 measured
    CHECK(e.top5 <= 1.0);
    if (e.split != "train") CHECK(e.final == (e.epoch == 1));
  }
  CHECK(count["val"] == 2);
  CHECK(count["test"] == 2);
  CHECK(count["train"] == 1);
  CHECK(finals["val"] == 1);
  CHECK(finals["test"] == 1);
  CHECK(runs[0].gen_gap == Approx(runs[0].train_acc - runs[0].test_acc));
}

TEST_CASE("every ready grid in experiments/grids parses", "[data]") {
  for (const auto& e : std::filesystem::directory_iterator(std::string(HTGA_SOURCE_DIR) + "/experiments/grids")) {
    if (e.path().extension() != ".json") continue;
    INFO(e.path().string());
    CHECK_NOTHROW(htga::experiments::load_grid(e.path().string(), htga::experiments::GridOptions{false}));
  }
}

TEST_CASE("JPEG images decode too", "[data]") {
  TempDir dir("jpeg");
  const std::string root = dir.str();
  std::vector<uint8_t> px;
  for (int i = 0; i < 16 * 16; ++i) px.insert(px.end(), {40, 120, 200});
  for (const char* p : {"/train/a/1.jpg", "/test/a/2.JPEG"}) {
    std::filesystem::create_directories(std::filesystem::path(root + p).parent_path());
    REQUIRE(stbi_write_jpg((root + p).c_str(), 16, 16, 3, px.data(), /*quality=*/100) != 0);
  }
  htga::data::ImageFolderOptions o;
  o.size = 8;
  auto d = htga::data::load_image_folder(root, o);
  REQUIRE(d.test.images.sizes() == torch::IntArrayRef({1, 3, 8, 8}));
  // JPEG is lossy: a uniform colour comes back within a few levels.
  auto expected = torch::tensor({40, 120, 200}, torch::kFloat32).view({3, 1, 1});
  CHECK((d.train.images[0].to(torch::kFloat32) - expected).abs().max().item<double>() <= 3);
}

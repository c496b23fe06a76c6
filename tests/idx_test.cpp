#include "experiments/data/idx.h"

#include <catch2/catch.hpp>

#include "experiments/data/dataset.h"
#include "experiments/error.h"
#include "test_util.h"

using htga::InputError;
using htga::data::read_idx_u8;
using htga::test::idx_bytes;
using htga::test::TempDir;
using htga::test::write_bytes;

TEST_CASE("IDX files are read gzipped or plain", "[data]") {
  TempDir dir("idx");
  std::vector<uint8_t> pixels;
  for (int i = 0; i < 2 * 3 * 4; ++i) pixels.push_back(static_cast<uint8_t>(i * 7));
  for (bool gz : {true, false}) {
    const std::string path = dir.file(gz ? "a.gz" : "a");
    write_bytes(path, idx_bytes({2, 3, 4}, pixels), gz);
    auto arr = read_idx_u8(path);
    CHECK(arr.dims == std::vector<int64_t>{2, 3, 4});
    CHECK(arr.data == pixels);
  }
}

TEST_CASE("damaged IDX files are errors that name the file", "[data]") {
  TempDir dir("idxbad");
  const std::string path = dir.file("x.gz");
  auto bytes = idx_bytes({10, 2, 2}, std::vector<uint8_t>(40, 1));

  auto truncated = bytes;
  truncated.resize(bytes.size() - 5);
  write_bytes(path, truncated, true);
  CHECK_THROWS_WITH(read_idx_u8(path), path + ": truncated: header announces 40 bytes of data, file has 35");

  auto longer = bytes;
  longer.push_back(9);
  write_bytes(path, longer, true);
  CHECK_THROWS_WITH(read_idx_u8(path), path + ": more data than the header announces");

  auto bad_magic = bytes;
  bad_magic[0] = 0x1f;
  write_bytes(path, bad_magic, false);
  CHECK_THROWS_WITH(read_idx_u8(path), path + ": not an IDX file (bad magic number)");

  write_bytes(path, {0, 0}, false);
  CHECK_THROWS_WITH(read_idx_u8(path), path + ": truncated IDX header");

  CHECK_THROWS_AS(read_idx_u8(dir.file("missing")), InputError);
}

TEST_CASE("stratified subsets have equal class counts and are reproducible", "[data]") {
  std::vector<uint8_t> labels;
  for (int i = 0; i < 300; ++i) labels.push_back(static_cast<uint8_t>(i % 3));
  auto a = htga::data::stratified_subset(labels, 3, 31, /*seed=*/7);
  REQUIRE(a.size() == 31);
  int counts[3] = {0, 0, 0};
  for (auto i : a) ++counts[labels[i]];
  CHECK(counts[0] == 11);
  CHECK(counts[1] == 10);
  CHECK(counts[2] == 10);
  CHECK(std::is_sorted(a.begin(), a.end()));
  CHECK(htga::data::stratified_subset(labels, 3, 31, 7) == a);
  CHECK(htga::data::stratified_subset(labels, 3, 31, 8) != a);
  CHECK_THROWS_AS(htga::data::stratified_subset(labels, 3, 301, 7), InputError);
}

TEST_CASE("an MNIST-format folder loads as normalised tensors", "[data]") {
  TempDir dir("fmnist");
  const uint32_t n_train = 40, n_test = 10;
  std::vector<uint8_t> train_images, train_labels, test_images, test_labels;
  for (uint32_t i = 0; i < n_train; ++i) {
    train_labels.push_back(static_cast<uint8_t>(i % 10));
    for (int p = 0; p < 4; ++p) train_images.push_back(static_cast<uint8_t>((i * 13 + p * 31) % 256));
  }
  for (uint32_t i = 0; i < n_test; ++i) {
    test_labels.push_back(static_cast<uint8_t>(i));
    for (int p = 0; p < 4; ++p) test_images.push_back(static_cast<uint8_t>(i * 20));
  }
  write_bytes(dir.file("train-images-idx3-ubyte.gz"), idx_bytes({n_train, 2, 2}, train_images), true);
  write_bytes(dir.file("train-labels-idx1-ubyte.gz"), idx_bytes({n_train}, train_labels), true);
  write_bytes(dir.file("t10k-images-idx3-ubyte"), idx_bytes({n_test, 2, 2}, test_images), false);
  write_bytes(dir.file("t10k-labels-idx1-ubyte"), idx_bytes({n_test}, test_labels), false);

  nlohmann::json cfg = {{"name", "fashion-mnist"}, {"path", dir.str()}, {"train_size", 20}, {"data_seed", 0}};
  auto d = htga::data::load_dataset(cfg, torch::kCPU);
  CHECK(d.train_x.sizes() == torch::IntArrayRef({20, 1, 2, 2}));
  CHECK(d.test_x.sizes() == torch::IntArrayRef({10, 1, 2, 2}));
  CHECK(d.train_y.bincount().eq(2).all().item<bool>());  // 2 per class
  CHECK(d.train_x.dtype() == torch::kUInt8);             // normalised per batch
  const auto x = htga::data::normalize_pixels(d.train_x, d.pixel_table);
  CHECK(x.mean().item<double>() == Approx(0).margin(1e-5));
  CHECK(x.std().item<double>() == Approx(1).margin(1e-4));

  // A label outside the 10 classes is an error, not garbage training data.
  test_labels[3] = 12;
  write_bytes(dir.file("t10k-labels-idx1-ubyte"), idx_bytes({n_test}, test_labels), false);
  CHECK_THROWS_WITH(htga::data::load_dataset(cfg, torch::kCPU),
                    dir.file("t10k-labels-idx1-ubyte") + ": label 12 at item 3 is outside 0..9");
}

#include "experiments/data/dataset.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <random>

#include "experiments/data/idx.h"
#include "experiments/error.h"

namespace htga::data {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kMnistFiles[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                                       "t10k-labels-idx1-ubyte"};

/// `dir/name.gz` or `dir/name`, whichever exists; empty when neither does.
std::string find_file(const std::string& dir, const std::string& name) {
  for (const std::string& candidate : {dir + "/" + name + ".gz", dir + "/" + name})
    if (fs::is_regular_file(candidate)) return candidate;
  return {};
}

struct Split {
  IdxArray images;
  std::vector<uint8_t> labels;
};

Split read_split(const std::string& dir, const char* images_name, const char* labels_name, int64_t num_classes) {
  std::string images_path = find_file(dir, images_name);
  std::string labels_path = find_file(dir, labels_name);
  if (images_path.empty()) throw InputError(dir + ": missing " + images_name + "(.gz)");
  if (labels_path.empty()) throw InputError(dir + ": missing " + labels_name + "(.gz)");
  Split s;
  s.images = read_idx_u8(images_path);
  if (s.images.dims.size() != 3)
    throw InputError(images_path + ": expected 3 dimensions (count, rows, columns), got " +
                     std::to_string(s.images.dims.size()));
  IdxArray labels = read_idx_u8(labels_path);
  if (labels.dims.size() != 1)
    throw InputError(labels_path + ": expected 1 dimension, got " + std::to_string(labels.dims.size()));
  if (labels.dims[0] != s.images.dims[0])
    throw InputError(labels_path + ": " + std::to_string(labels.dims[0]) + " labels for " +
                     std::to_string(s.images.dims[0]) + " images in " + images_path);
  for (size_t i = 0; i < labels.data.size(); ++i)
    if (labels.data[i] >= num_classes)
      throw InputError(labels_path + ": label " + std::to_string(labels.data[i]) + " at item " + std::to_string(i) +
                       " is outside 0.." + std::to_string(num_classes - 1));
  s.labels = std::move(labels.data);
  return s;
}

/// Images (selected rows) as float [n, 1, rows, cols] in [0, 1], labels as int64.
std::pair<torch::Tensor, torch::Tensor> to_tensors(const Split& s, const std::vector<int64_t>* rows) {
  const int64_t h = s.images.dims[1], w = s.images.dims[2], n_all = s.images.dims[0];
  auto images = torch::from_blob(const_cast<uint8_t*>(s.images.data.data()), {n_all, 1, h, w}, torch::kUInt8);
  auto labels = torch::from_blob(const_cast<uint8_t*>(s.labels.data()), {n_all}, torch::kUInt8);
  if (rows) {
    auto idx = torch::tensor(*rows, torch::kInt64);
    images = images.index_select(0, idx);
    labels = labels.index_select(0, idx);
  }
  return {images.to(torch::kFloat32).div_(255.0), labels.to(torch::kInt64)};
}

}  // namespace

void check_available(const json& config) {
  const std::string dir = config.at("path").get<std::string>();
  if (!fs::is_directory(dir)) throw InputError(dir + ": dataset folder not found");
  for (const char* name : kMnistFiles)
    if (find_file(dir, name).empty()) throw InputError(dir + ": missing " + std::string(name) + "(.gz)");
}

std::vector<int64_t> stratified_subset(const std::vector<uint8_t>& labels, int64_t num_classes, int64_t size,
                                       uint64_t seed) {
  const auto n = static_cast<int64_t>(labels.size());
  if (size > n)
    throw InputError("train_size " + std::to_string(size) + " is larger than the training set (" + std::to_string(n) +
                     ")");
  std::vector<std::vector<int64_t>> by_class(num_classes);
  for (int64_t i = 0; i < n; ++i) by_class[labels[i]].push_back(i);
  // Fisher-Yates with mt19937_64 (fully specified by the standard, unlike std::shuffle), so a
  // subset is the same on every platform.
  std::mt19937_64 rng(seed);
  std::vector<int64_t> out;
  for (int64_t c = 0; c < num_classes; ++c) {
    const int64_t want = size / num_classes + (c < size % num_classes ? 1 : 0);
    auto& v = by_class[c];
    if (static_cast<int64_t>(v.size()) < want)
      throw InputError("train_size " + std::to_string(size) + " needs " + std::to_string(want) + " examples of class " +
                       std::to_string(c) + ", the training set has " + std::to_string(v.size()));
    for (int64_t i = 0; i < want; ++i) {
      const auto j = i + static_cast<int64_t>(rng() % static_cast<uint64_t>(v.size() - i));
      std::swap(v[i], v[j]);
    }
    out.insert(out.end(), v.begin(), v.begin() + want);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Dataset load_dataset(const json& config, const torch::Device& device) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string name = config.at("name").get<std::string>();
  if (name != "fashion-mnist") throw InputError("unknown dataset \"" + name + "\"");
  const std::string dir = config.at("path").get<std::string>();
  check_available(config);
  const int64_t classes = 10;

  Split train = read_split(dir, kMnistFiles[0], kMnistFiles[1], classes);
  Split test = read_split(dir, kMnistFiles[2], kMnistFiles[3], classes);
  if (train.images.dims[1] != test.images.dims[1] || train.images.dims[2] != test.images.dims[2])
    throw InputError(dir + ": train and test images differ in size");

  const int64_t train_size = config.value("train_size", int64_t{0});
  std::vector<int64_t> rows;
  if (train_size > 0) {
    try {
      rows = stratified_subset(train.labels, classes, train_size, config.value("data_seed", uint64_t{0}));
    } catch (const InputError& e) {
      throw InputError(dir + ": " + e.what());
    }
  }

  Dataset d;
  d.name = name;
  d.num_classes = classes;
  std::tie(d.train_x, d.train_y) = to_tensors(train, train_size > 0 ? &rows : nullptr);
  std::tie(d.test_x, d.test_y) = to_tensors(test, nullptr);
  // Normalise with the statistics of the examples trained on: nothing from the test set leaks in.
  const auto mean = d.train_x.mean().item<double>();
  const auto std = d.train_x.std().item<double>();
  d.train_x.sub_(mean).div_(std);
  d.test_x.sub_(mean).div_(std);
  d.train_x = d.train_x.to(device);
  d.train_y = d.train_y.to(device);
  d.test_x = d.test_x.to(device);
  d.test_y = d.test_y.to(device);
  d.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return d;
}

}  // namespace htga::data

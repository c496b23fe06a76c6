#include "experiments/data/dataset.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <stdexcept>

#include "experiments/data/cache.h"
#include "experiments/data/cifar.h"
#include "experiments/data/idx.h"
#include "experiments/data/image_folder.h"
#include "experiments/data/packed.h"
#include "experiments/data/text_dataset.h"
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

CifarFormat cifar_format(const json& config) {
  if (config.at("name") == "cifar10") return CifarFormat::kCifar10;
  return config.value("labels", std::string("fine")) == "coarse" ? CifarFormat::kCifar100Coarse
                                                                 : CifarFormat::kCifar100Fine;
}

ImageFolderOptions image_options(const json& config) {
  ImageFolderOptions o;
  o.size = config.value("size", o.size);
  o.channels = config.value("channels", o.channels);
  return o;
}

RawSplit read_mnist_split(const std::string& dir, const char* images_name, const char* labels_name,
                          int64_t num_classes) {
  std::string images_path = find_file(dir, images_name);
  std::string labels_path = find_file(dir, labels_name);
  if (images_path.empty()) throw InputError(dir + ": missing " + images_name + "(.gz)");
  if (labels_path.empty()) throw InputError(dir + ": missing " + labels_name + "(.gz)");
  IdxArray images = read_idx_u8(images_path);
  if (images.dims.size() != 3)
    throw InputError(images_path + ": expected 3 dimensions (count, rows, columns), got " +
                     std::to_string(images.dims.size()));
  IdxArray labels = read_idx_u8(labels_path);
  if (labels.dims.size() != 1)
    throw InputError(labels_path + ": expected 1 dimension, got " + std::to_string(labels.dims.size()));
  if (labels.dims[0] != images.dims[0])
    throw InputError(labels_path + ": " + std::to_string(labels.dims[0]) + " labels for " +
                     std::to_string(images.dims[0]) + " images in " + images_path);
  for (size_t i = 0; i < labels.data.size(); ++i)
    if (labels.data[i] >= num_classes)
      throw InputError(labels_path + ": label " + std::to_string(labels.data[i]) + " at item " + std::to_string(i) +
                       " is outside 0.." + std::to_string(num_classes - 1));
  const int64_t n = images.dims[0], h = images.dims[1], w = images.dims[2];
  RawSplit s;
  s.images = torch::from_blob(images.data.data(), {n, 1, h, w}, torch::kUInt8).clone();
  s.labels = torch::from_blob(labels.data.data(), {n}, torch::kUInt8).to(torch::kInt64);
  return s;
}

RawDataset load_mnist(const std::string& dir) {
  if (!fs::is_directory(dir))
    throw InputError(dir + (fs::exists(dir) ? ": not a folder (the dataset's path names its folder)"
                                            : ": dataset folder not found"));
  RawDataset d;
  d.num_classes = 10;
  d.train = read_mnist_split(dir, kMnistFiles[0], kMnistFiles[1], d.num_classes);
  d.test = read_mnist_split(dir, kMnistFiles[2], kMnistFiles[3], d.num_classes);
  if (d.train.images.sizes().slice(2) != d.test.images.sizes().slice(2))
    throw InputError(dir + ": train and test images differ in size");
  return d;
}

void cifar100_settings(const json& config, json& s) { s["labels"] = config.value("labels", std::string("fine")); }

void image_folder_settings(const json& config, json& s) {
  const ImageFolderOptions o = image_options(config);
  s["size"] = o.size;
  s["channels"] = o.channels;
}

std::vector<std::string> mnist_files(const json& config) {
  const std::string dir = config.at("path").get<std::string>();
  std::vector<std::string> out;
  for (const char* f : kMnistFiles) {
    std::string p = find_file(dir, f);
    if (p.empty()) throw InputError(dir + ": missing " + std::string(f) + "(.gz)");
    out.push_back(p);
  }
  return out;
}

std::vector<std::string> cifar_files_of(const json& config) {
  const CifarFormat format = cifar_format(config);
  const std::string folder = cifar_folder(config.at("path").get<std::string>(), format);
  std::vector<std::string> out;
  for (bool train : {true, false})
    for (const std::string& f : cifar_files(folder, format, train)) out.push_back(f);
  return out;
}

std::vector<std::string> image_folder_files(const json& config) {
  const ImageFolderListing l = list_image_folder(config.at("path").get<std::string>());
  std::vector<std::string> out;
  for (const auto* files : {&l.train, &l.test})
    for (const ImageFile& f : *files) out.push_back(f.path);
  return out;
}

void check_mnist(const json& config) { mnist_files(config); }

void check_cifar(const json& config) { cifar_folder(config.at("path").get<std::string>(), cifar_format(config)); }

void check_image_folder(const json& config) {
  image_folder_test_dir(config.at("path").get<std::string>());
  const ImageFolderOptions o = image_options(config);
  if (o.channels != 1 && o.channels != 3)
    throw InputError("channels must be 1 (grey) or 3 (RGB), got " + std::to_string(o.channels));
}

RawDataset decode_mnist(const json& config) { return load_mnist(config.at("path").get<std::string>()); }
RawDataset decode_cifar(const json& config) {
  return load_cifar(config.at("path").get<std::string>(), cifar_format(config));
}
RawDataset decode_image_folder(const json& config) {
  return load_image_folder(config.at("path").get<std::string>(), image_options(config));
}

/// How a dataset of the registry is found, checked and read. Image datasets decode to a
/// RawDataset (cached, subset, normalised, moved to the device); text datasets are tokenized by
/// load_text_dataset and packed ones opened by load_packed: neither decodes nor caches.
struct Format {
  std::vector<std::string> (*files)(const json&);      // the files it reads
  void (*check)(const json&);                          // its files exist (packs: and are valid)
  RawDataset (*decode)(const json&);                   // images: decoded; nullptr when `load` reads
  void (*settings)(const json&, json&);                // images: settings that change the decoding
  Dataset (*load)(const json&, const torch::Device&);  // text and packed: the whole load
};

constexpr Format kMnist{mnist_files, check_mnist, decode_mnist, nullptr, nullptr};
constexpr Format kCifar10{cifar_files_of, check_cifar, decode_cifar, nullptr, nullptr};
constexpr Format kCifar100{cifar_files_of, check_cifar, decode_cifar, cifar100_settings, nullptr};
constexpr Format kImageFolder{image_folder_files, check_image_folder, decode_image_folder, image_folder_settings,
                              nullptr};
constexpr Format kText{text_source_files, check_text_available, nullptr, nullptr, load_text_dataset};
constexpr Format kPacked{packed_files, check_packed, nullptr, nullptr, load_packed};

/// The dataset registry's readers: one line per name of experiments::datasets().
const std::map<std::string, Format>& formats() {
  static const std::map<std::string, Format> m{{"mnist", kMnist},
                                               {"fashion-mnist", kMnist},
                                               {"cifar10", kCifar10},
                                               {"cifar100", kCifar100},
                                               {"image-folder", kImageFolder},
                                               {"packed", kPacked},
                                               {"glue/cola", kText},
                                               {"glue/sst2", kText},
                                               {"glue/mrpc", kText},
                                               {"glue/qqp", kText},
                                               {"glue/stsb", kText},
                                               {"glue/mnli", kText},
                                               {"glue/qnli", kText},
                                               {"glue/rte", kText},
                                               {"glue/wnli", kText},
                                               {"text/sentences", kText},
                                               {"squad", kText},
                                               {"lm", kText}};
  return m;
}

const Format& format_of(const json& config) {
  const std::string name = config.at("name").get<std::string>();
  const auto it = formats().find(name);
  if (it == formats().end()) throw std::logic_error("internal error: dataset \"" + name + "\" has no reader");
  return it->second;
}

/// The settings that change what decoding produces (the cache's file name and part of its key).
json decode_settings(const json& config) {
  json s = {{"name", config.at("name")}, {"path", fs::absolute(config.at("path").get<std::string>()).string()}};
  if (const Format& f = format_of(config); f.settings) f.settings(config, s);
  return s;
}

/// The cache key: the decoding settings and the path, size and modification time of every file
/// read, so that a changed file makes a new cache.
std::string cache_key(const json& config) {
  std::string files;
  for (const std::string& f : source_files(config)) {
    struct stat st {};
    if (::stat(f.c_str(), &st) != 0) throw InputError(f + ": cannot read");
    files += f + "\t" + std::to_string(st.st_size) + "\t" + std::to_string(st.st_mtim.tv_sec) + "." +
             std::to_string(st.st_mtim.tv_nsec) + "\n";
  }
  return decode_settings(config).dump() + " files " + fnv1a_hex(files);
}

std::vector<int64_t> to_vector(const torch::Tensor& labels) {
  auto l = labels.to(torch::kInt64).contiguous();
  return std::vector<int64_t>(l.data_ptr<int64_t>(), l.data_ptr<int64_t>() + l.numel());
}

torch::Tensor rows_of(const torch::Tensor& t, const std::vector<int64_t>& rows) {
  return t.index_select(0, torch::tensor(rows, torch::kInt64));
}

}  // namespace

const char* name_of(TaskKind kind) {
  switch (kind) {
    case TaskKind::kImages:
      return "classify";
    case TaskKind::kTextClassify:
      return "text-classify";
    case TaskKind::kRegress:
      return "regress";
    case TaskKind::kSpan:
      return "span";
    case TaskKind::kLm:
      return "lm";
  }
  return "?";
}

std::vector<std::string> source_files(const json& config) { return format_of(config).files(config); }

int64_t Dataset::train_size() const {
  if (packed) return static_cast<int64_t>(packed->train_rows.size());
  return train_rows.defined() ? train_rows.size(0) : train_x.size(0);
}

torch::Tensor Dataset::train_images(const torch::Tensor& idx) const {
  return train_x.index_select(0, train_rows.defined() ? train_rows.index_select(0, idx) : idx);
}
int64_t Dataset::val_size() const { return packed ? static_cast<int64_t>(packed->val_rows.size()) : val_x.size(0); }
int64_t Dataset::test_size() const { return packed ? packed->test_pack->size() : test_x.size(0); }

torch::Tensor normalize_pixels(const torch::Tensor& x, const torch::Tensor& table) {
  const int64_t c = x.size(1);
  if (x.is_cpu() && table.is_cpu() && x.scalar_type() == torch::kUInt8 && x.dim() == 4) {
    // On the CPU a plain table lookup per pixel: the gather below (int64 indices, index_select)
    // took the MLP's step from 1.9-2.6 to 5.0-5.2 ms. The same floats either way.
    const auto xc = x.contiguous();
    const auto tc = table.to(torch::kFloat32).contiguous();
    auto out = torch::empty(x.sizes(), x.options().dtype(torch::kFloat32));
    const int64_t planes = x.size(0) * c, plane = c > 0 && x.size(0) > 0 ? x.numel() / planes : 0;
    const uint8_t* p = xc.data_ptr<uint8_t>();
    const float* t = tc.data_ptr<float>();
    float* o = out.data_ptr<float>();
    at::parallel_for(0, planes, 16, [&](int64_t begin, int64_t end) {
      for (int64_t k = begin; k < end; ++k) {
        const float* row = t + (k % c) * 256;
        const uint8_t* q = p + k * plane;
        float* r = o + k * plane;
        for (int64_t j = 0; j < plane; ++j) r[j] = row[q[j]];
      }
    });
    return out;
  }
  // Channel c's values index row c of the flattened table.
  auto offset = torch::arange(c, x.options().dtype(torch::kInt64)).mul_(256).view({1, c, 1, 1});
  auto flat = (x.to(torch::kInt64) + offset).reshape({-1});
  return table.reshape({-1}).index_select(0, flat).view(x.sizes());
}

void check_available(const json& config) {
  const Format& f = format_of(config);
  // Settings that contradict each other are wrong wherever the data is: say so first.
  if (config.value("train_size", int64_t{0}) > 0 && config.value("train_fraction", 1.0) < 1.0)
    throw InputError("train_size and train_fraction both set: give one of them");
  if (f.decode) {
    const std::string dir = config.at("path").get<std::string>();
    if (!fs::is_directory(dir))
      throw InputError(dir + (fs::exists(dir) ? ": not a folder (the dataset's path names its folder)"
                                              : ": dataset folder not found"));
  }
  f.check(config);
}

RawDataset decode_dataset(const json& config) {
  const Format& f = format_of(config);
  if (!f.decode) throw std::logic_error("internal error: text datasets are not decoded to images");
  return f.decode(config);
}

std::vector<std::string> dataset_reader_names() {
  std::vector<std::string> names;
  for (const auto& [name, f] : formats()) names.push_back(name);
  return names;
}

std::vector<int64_t> stratified_subset(const std::vector<int64_t>& labels, int64_t num_classes, int64_t size,
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

std::vector<int64_t> stratified_subset(const std::vector<uint8_t>& labels, int64_t num_classes, int64_t size,
                                       uint64_t seed) {
  return stratified_subset(std::vector<int64_t>(labels.begin(), labels.end()), num_classes, size, seed);
}

std::vector<int64_t> stratified_fraction(const std::vector<int64_t>& labels, int64_t num_classes, double fraction,
                                         uint64_t seed) {
  if (!(fraction > 0 && fraction <= 1))
    throw InputError(fmt::format("train_fraction must be in (0, 1], got {:g}", fraction));
  std::vector<std::vector<int64_t>> by_class(num_classes);
  for (size_t i = 0; i < labels.size(); ++i) by_class[labels[i]].push_back(static_cast<int64_t>(i));
  std::mt19937_64 rng(seed);
  std::vector<int64_t> out;
  for (auto& v : by_class) {
    if (v.empty()) continue;
    const auto n = static_cast<int64_t>(v.size());
    const int64_t want = std::clamp<int64_t>(std::llround(fraction * static_cast<double>(n)), 1, n);
    for (int64_t i = 0; i < want; ++i) {
      const auto j = i + static_cast<int64_t>(rng() % static_cast<uint64_t>(n - i));
      std::swap(v[i], v[j]);
    }
    out.insert(out.end(), v.begin(), v.begin() + want);
  }
  std::sort(out.begin(), out.end());
  return out;
}

SplitRows split_rows(const std::vector<int64_t>& labels, int64_t num_classes, int64_t val_size, int64_t train_size,
                     double train_fraction, uint64_t seed) {
  SplitRows out;
  std::vector<int64_t> pool;  // rows left for training
  if (val_size > 0) {
    try {
      out.val = stratified_subset(labels, num_classes, val_size, seed);
    } catch (const InputError& e) {
      std::string msg = e.what();
      throw InputError("val_size" + msg.substr(msg.find(' ')));
    }
    std::vector<bool> taken(labels.size());
    for (int64_t i : out.val) taken[i] = true;
    for (size_t i = 0; i < labels.size(); ++i)
      if (!taken[i]) pool.push_back(static_cast<int64_t>(i));
  } else {
    pool.resize(labels.size());
    for (size_t i = 0; i < pool.size(); ++i) pool[i] = static_cast<int64_t>(i);
  }
  if (val_size > 0 && (pool.empty() || train_size > static_cast<int64_t>(pool.size())))
    throw InputError(fmt::format("val_size {} leaves {} of the {} training examples for training{}", val_size,
                                 pool.size(), labels.size(),
                                 train_size > 0 ? fmt::format(", fewer than train_size {}", train_size) : ""));
  std::vector<int64_t> pool_labels;
  for (int64_t i : pool) pool_labels.push_back(labels[i]);
  std::vector<int64_t> picked;
  if (train_size > 0) {
    // A different stream from the validation split's, the same as before val_size existed.
    picked =
        stratified_subset(pool_labels, num_classes, train_size, val_size > 0 ? seed ^ 0x9e3779b97f4a7c15ULL : seed);
  } else if (train_fraction < 1.0) {
    picked = stratified_fraction(pool_labels, num_classes, train_fraction, seed ^ 0x9e3779b97f4a7c15ULL);
  } else {
    out.train = std::move(pool);
    return out;
  }
  for (int64_t p : picked) out.train.push_back(pool[p]);
  return out;
}

namespace {

/// Counts of each 8-bit value per channel of uint8 images [N, C, H, W]: blocks of images on
/// the intra-op threads, each counting into four interleaved tables (consecutive pixels of equal
/// value would otherwise wait on one counter), summed at the end.
std::vector<std::array<int64_t, 256>> channel_histograms(const torch::Tensor& images,
                                                         const std::vector<int64_t>* rows) {
  auto x = images.contiguous();
  const int64_t n = rows ? static_cast<int64_t>(rows->size()) : x.size(0), c = x.size(1), plane = x.size(2) * x.size(3);
  std::vector<std::array<int64_t, 256>> h(static_cast<size_t>(c));
  for (auto& a : h) a.fill(0);
  const uint8_t* p = x.data_ptr<uint8_t>();
  std::mutex merge;
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 20) / std::max<int64_t>(1, c * plane));
  at::parallel_for(0, n, grain, [&](int64_t begin, int64_t end) {
    std::vector<std::array<int64_t, 4 * 256>> local(static_cast<size_t>(c));
    for (auto& a : local) a.fill(0);
    for (int64_t i = begin; i < end; ++i)
      for (int64_t ch = 0; ch < c; ++ch) {
        int64_t* t = local[static_cast<size_t>(ch)].data();
        const int64_t row = rows ? (*rows)[static_cast<size_t>(i)] : i;
        const uint8_t* q = p + (row * c + ch) * plane;
        int64_t j = 0;
        for (; j + 4 <= plane; j += 4) {
          ++t[q[j]];
          ++t[256 + q[j + 1]];
          ++t[512 + q[j + 2]];
          ++t[768 + q[j + 3]];
        }
        for (; j < plane; ++j) ++t[q[j]];
      }
    std::lock_guard<std::mutex> lock(merge);
    for (int64_t ch = 0; ch < c; ++ch)
      for (int v = 0; v < 256; ++v)
        for (int k = 0; k < 4; ++k) h[size_t(ch)][size_t(v)] += local[size_t(ch)][size_t(k * 256 + v)];
  });
  return h;
}

/// Per-channel statistics of the examples trained on (nothing from validation or test leaks
/// in), exact from a histogram of the 8-bit pixels, and the per-channel table of the 256
/// possible values that normalize_pixels applies to each batch: the images stay uint8.
void normalize(Dataset& d, const torch::Tensor& train_images, const std::vector<int64_t>* train_rows,
               const torch::Tensor& val_images, const torch::Tensor& test_images) {
  const int64_t channels = train_images.size(1);
  const auto hists = channel_histograms(train_images, train_rows);
  std::vector<std::array<float, 256>> table(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) {
    double n = 0, sum = 0, sum2 = 0;
    for (int v = 0; v < 256; ++v) {
      const double k = static_cast<double>(hists[c][v]), x = v / 255.0;
      n += k;
      sum += k * x;
      sum2 += k * x * x;
    }
    const double mean = sum / n;
    const double var = n > 1 ? std::max(0.0, (sum2 - n * mean * mean) / (n - 1)) : 0.0;  // unbiased, as torch.std
    d.mean.push_back(mean);
    d.std.push_back(std::max(std::sqrt(var), 1e-12));
    for (int v = 0; v < 256; ++v) table[c][v] = static_cast<float>((v / 255.0 - mean) / d.std.back());
  }
  d.pixel_table = torch::empty({channels, 256}, torch::kFloat32);
  for (int64_t c = 0; c < channels; ++c)
    std::copy(table[c].begin(), table[c].end(), d.pixel_table.data_ptr<float>() + c * 256);
  d.train_x = train_images.contiguous();
  d.val_x = val_images.contiguous();
  d.test_x = test_images.contiguous();
}

}  // namespace

Dataset load_dataset(const json& config, const torch::Device& device, const LoadOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  check_available(config);
  const std::string name = config.at("name").get<std::string>();
  if (const Format& f = format_of(config); f.load) return f.load(config, device);  // no cache
  const std::string dir = config.at("path").get<std::string>();

  Dataset d;
  d.name = name;
  RawDataset raw;
  bool decoded = true;
  std::string cache_path, key;
  if (!options.cache_dir.empty()) {
    key = cache_key(config);
    cache_path = options.cache_dir + "/" + name + "-" + fnv1a_hex(decode_settings(config).dump()) + ".bin";
    std::string why_not;
    if (auto cached = read_cache(cache_path, key, &why_not)) {
      raw = std::move(*cached);
      decoded = false;
      d.cache_note = "read " + cache_path;
    } else {
      d.cache_note =
          why_not == "no cache file" ? "written " + cache_path : "rewritten " + cache_path + " (" + why_not + ")";
    }
  }
  if (decoded) raw = decode_dataset(config);
  d.num_classes = raw.num_classes;

  // Validation split and low-data subset, reproducible from data_seed; checked before the cache
  // is written, so that a refused grid leaves nothing behind.
  const int64_t train_size = config.value("train_size", int64_t{0});
  const int64_t val_size = config.value("val_size", int64_t{0});
  const double train_fraction = config.value("train_fraction", 1.0);
  SplitRows rows;
  try {
    rows = split_rows(to_vector(raw.train.labels), d.num_classes, val_size, train_size, train_fraction,
                      config.value("data_seed", uint64_t{0}));
  } catch (const InputError& e) {
    throw InputError(dir + ": " + e.what());
  }
  if (decoded && !cache_path.empty()) {
    if (options.deferred_writes) {
      options.deferred_writes->push_back([cache_path, key, raw] {
        try {
          write_cache(cache_path, key, raw);
        } catch (const InputError&) {  // a cache is a convenience: training goes on without it
        }
      });
    } else {
      try {
        write_cache(cache_path, key, raw);
      } catch (const InputError& e) {  // a cache is a convenience: training goes on without it
        d.cache_note = std::string("not written (") + e.what() + ")";
      }
    }
  }
  const auto decoded_rows = raw.train.labels.size(0);
  const bool all = static_cast<int64_t>(rows.train.size()) == decoded_rows;
  // On the CPU a training split of most of the rows (beside a validation split) is read through
  // a row map instead of copied: the copy was 0.1 s of a 0.2 s load of Fashion-MNIST.
  const bool mapped = !all && device.is_cpu() && 2 * static_cast<int64_t>(rows.train.size()) > decoded_rows;
  auto train_images = all || mapped ? raw.train.images : rows_of(raw.train.images, rows.train);
  d.train_y = all ? raw.train.labels : rows_of(raw.train.labels, rows.train);
  auto val_images = rows_of(raw.train.images, rows.val);
  d.val_y = rows_of(raw.train.labels, rows.val);
  d.test_y = raw.test.labels;

  normalize(d, train_images, mapped ? &rows.train : nullptr, val_images, raw.test.images);
  if (mapped) d.train_rows = torch::tensor(rows.train, torch::kInt64);

  d.augment = config.value("augment", std::string("none"));
  for (torch::Tensor* t : {&d.train_x, &d.train_y, &d.val_x, &d.val_y, &d.test_x, &d.test_y, &d.pixel_table})
    *t = t->to(device);
  d.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return d;
}

}  // namespace htga::data

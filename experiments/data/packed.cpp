#include "experiments/data/packed.h"

#include <chrono>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "experiments/data/dataset.h"
#include "experiments/error.h"

namespace htga::data {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string pack_path(const json& config, const char* split) {
  return (fs::path(config.at("path").get<std::string>()) / (std::string(split) + ".pack")).string();
}

std::shared_ptr<const pack::PackFile> open_pack(const json& config, const char* split) {
  const std::string dir = config.at("path").get<std::string>(), path = pack_path(config, split);
  if (!fs::is_directory(dir))
    throw InputError(dir + (fs::exists(dir)
                                ? ": not a folder (a packed dataset's path names the folder of its packs)"
                                : ": packed dataset folder not found (htga pack ROOT --out " + dir + " writes it)"));
  if (!fs::is_regular_file(path))
    throw InputError(path + ": not found (htga pack ROOT --out " + dir + " writes train.pack and val.pack)");
  return std::make_shared<const pack::PackFile>(path);
}

int crop_of(const json& config) {
  const int64_t crop = config.value("crop", int64_t{224});
  if (crop < 1 || crop > 4096) throw InputError("crop must be 1..4096 pixels, got " + std::to_string(crop));
  return static_cast<int>(crop);
}

}  // namespace

const pack::PackFile& PackedSource::pack_of(const std::string& split) const {
  return split == "test" ? *test_pack : *train_pack;
}

std::vector<int64_t> PackedSource::rows_of(const std::string& split) const {
  if (split == "train") return train_rows;
  if (split == "val") return val_rows;
  if (split == "test") {
    std::vector<int64_t> all(static_cast<size_t>(test_pack->size()));
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
    return all;
  }
  throw std::logic_error("no split \"" + split + "\" in a packed dataset");
}

void check_packed(const json& config) {
  crop_of(config);
  auto train = open_pack(config, "train");
  auto test = open_pack(config, "val");
  if (test->classes() != train->classes())
    throw InputError(test->path() + ": its classes differ from those of " + train->path() +
                     " (pack both splits with one htga pack run)");
}

std::vector<std::string> packed_files(const json& config) {
  return {pack_path(config, "train"), pack_path(config, "val")};
}

Dataset load_packed(const json& config, const torch::Device& device) {
  const auto t0 = std::chrono::steady_clock::now();
  auto s = std::make_shared<PackedSource>();
  s->train_pack = open_pack(config, "train");
  s->test_pack = open_pack(config, "val");
  s->crop = crop_of(config);
  s->device = device;
  Dataset d;
  d.name = config.at("name").get<std::string>();
  d.task = TaskKind::kImages;
  d.num_classes = static_cast<int64_t>(s->train_pack->classes().size());
  std::vector<int64_t> labels(static_cast<size_t>(s->train_pack->size()));
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = s->train_pack->label(static_cast<int64_t>(i));
  try {
    SplitRows rows =
        split_rows(labels, d.num_classes, config.value("val_size", int64_t{0}), config.value("train_size", int64_t{0}),
                   config.value("train_fraction", 1.0), config.value("data_seed", uint64_t{0}));
    s->train_rows = std::move(rows.train);
    s->val_rows = std::move(rows.val);
  } catch (const InputError& e) {
    throw InputError(config.at("path").get<std::string>() + ": " + e.what());
  }
  std::vector<float> scale, shift;
  for (int c = 0; c < 3; ++c) {
    d.mean.push_back(kImageNetMean[c]);
    d.std.push_back(kImageNetStd[c]);
    scale.push_back(static_cast<float>(1.0 / (255.0 * kImageNetStd[c])));
    shift.push_back(static_cast<float>(kImageNetMean[c] / kImageNetStd[c]));
  }
  s->scale = torch::tensor(scale).reshape({1, 3, 1, 1}).to(device);
  s->shift = torch::tensor(shift).reshape({1, 3, 1, 1}).to(device);
  d.augment = "random-resized-crop-flip";
  d.packed = std::move(s);
  d.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return d;
}

torch::Tensor packed_to_device(const PackedSource& s, const uint8_t* pixels, int64_t batch) {
  auto options = torch::TensorOptions().dtype(torch::kUInt8);
  // Pinned memory lets the copy run while the host goes on; the caching host allocator keeps the
  // block until the copy has finished.
  if (s.device.is_cuda()) options = options.pinned_memory(true);
  auto host = torch::empty({batch, s.crop, s.crop, 3}, options);
  std::memcpy(host.data_ptr<uint8_t>(), pixels, static_cast<size_t>(host.numel()));
  auto x = host.to(s.device, /*non_blocking=*/true);
  // (x / 255 - mean) / std per channel, as x * scale - shift.
  return x.permute({0, 3, 1, 2}).contiguous().to(torch::kFloat32).mul_(s.scale).sub_(s.shift);
}

namespace {

pack::BatchStreamOptions with_crop(pack::BatchStreamOptions o, int crop) {
  o.crop = crop;
  return o;
}

}  // namespace

PackedBatches::PackedBatches(const PackedSource& source, const pack::PackFile& pack, pack::BatchStreamOptions options)
    : source_(source), stream_(pack, with_crop(std::move(options), source.crop)) {}

std::optional<PackedBatches::Batch> PackedBatches::next() {
  std::optional<pack::Batch> b = stream_.next();
  if (!b) return std::nullopt;
  Batch out;
  try {
    out.x = packed_to_device(source_, b->pixels, b->size);
    out.y = torch::from_blob(const_cast<int64_t*>(b->labels), {b->size}, torch::kInt64).clone().to(source_.device);
  } catch (...) {
    stream_.release(*b);
    throw;
  }
  stream_.release(*b);
  return out;
}

}  // namespace htga::data

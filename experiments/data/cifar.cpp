#include "experiments/data/cifar.h"

#include <filesystem>
#include <fstream>

#include "experiments/error.h"

namespace htga::data {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kPixels = kCifarChannels * kCifarSide * kCifarSide;  // 3072 bytes per image

int64_t label_bytes(CifarFormat format) { return format == CifarFormat::kCifar10 ? 1 : 2; }

const char* format_name(CifarFormat format) { return format == CifarFormat::kCifar10 ? "CIFAR-10" : "CIFAR-100"; }

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw InputError(path + ": cannot open");
  const std::streamoff size = in.tellg();
  if (size < 0) throw InputError(path + ": cannot read");
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), size)) throw InputError(path + ": cannot read");
  return bytes;
}

}  // namespace

int64_t cifar_classes(CifarFormat format) {
  switch (format) {
    case CifarFormat::kCifar10:
      return 10;
    case CifarFormat::kCifar100Fine:
      return 100;
    case CifarFormat::kCifar100Coarse:
      return 20;
  }
  return 0;
}

RawSplit read_cifar_file(const std::string& path, CifarFormat format) {
  const std::vector<uint8_t> bytes = read_all(path);
  const int64_t record = label_bytes(format) + kPixels;
  const auto size = static_cast<int64_t>(bytes.size());
  if (size == 0) throw InputError(path + ": empty file");
  if (size % record != 0)
    throw InputError(path + ": truncated: " + std::to_string(size) + " bytes is not a whole number of " +
                     std::to_string(record) + "-byte " + format_name(format) + " records");
  const int64_t n = size / record;
  RawSplit s;
  s.images = torch::empty({n, kCifarChannels, kCifarSide, kCifarSide}, torch::kUInt8);
  s.labels = torch::empty({n}, torch::kInt64);
  uint8_t* images = s.images.data_ptr<uint8_t>();
  int64_t* labels = s.labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* r = bytes.data() + i * record;
    if (format == CifarFormat::kCifar10) {
      if (r[0] >= 10)
        throw InputError(path + ": label " + std::to_string(r[0]) + " at record " + std::to_string(i) +
                         " is outside 0..9");
      labels[i] = r[0];
    } else {
      if (r[0] >= 20)
        throw InputError(path + ": coarse label " + std::to_string(r[0]) + " at record " + std::to_string(i) +
                         " is outside 0..19");
      if (r[1] >= 100)
        throw InputError(path + ": fine label " + std::to_string(r[1]) + " at record " + std::to_string(i) +
                         " is outside 0..99");
      labels[i] = format == CifarFormat::kCifar100Fine ? r[1] : r[0];
    }
    std::copy(r + label_bytes(format), r + record, images + i * kPixels);
  }
  return s;
}

std::vector<std::string> cifar_files(const std::string& folder, CifarFormat format, bool train) {
  if (format != CifarFormat::kCifar10) return {folder + (train ? "/train.bin" : "/test.bin")};
  if (!train) return {folder + "/test_batch.bin"};
  std::vector<std::string> out;
  for (int i = 1; i <= 5; ++i) out.push_back(folder + "/data_batch_" + std::to_string(i) + ".bin");
  return out;
}

std::string cifar_folder(const std::string& dir, CifarFormat format) {
  if (!fs::is_directory(dir))
    throw InputError(dir + (fs::exists(dir) ? ": not a folder (the dataset's path names its folder)"
                                            : ": dataset folder not found"));
  const std::string sub = dir + (format == CifarFormat::kCifar10 ? "/cifar-10-batches-bin" : "/cifar-100-binary");
  const std::string folder = fs::is_directory(sub) ? sub : dir;
  for (bool train : {true, false})
    for (const std::string& f : cifar_files(folder, format, train))
      if (!fs::is_regular_file(f))
        throw InputError(folder + ": missing " + fs::path(f).filename().string() + " (" + format_name(format) +
                         " binary version)");
  return folder;
}

RawDataset load_cifar(const std::string& dir, CifarFormat format) {
  const std::string folder = cifar_folder(dir, format);
  RawDataset d;
  d.num_classes = cifar_classes(format);
  for (bool train : {true, false}) {
    std::vector<torch::Tensor> images, labels;
    for (const std::string& f : cifar_files(folder, format, train)) {
      RawSplit s = read_cifar_file(f, format);
      images.push_back(s.images);
      labels.push_back(s.labels);
    }
    RawSplit& out = train ? d.train : d.test;
    out.images = images.size() == 1 ? images[0] : torch::cat(images);
    out.labels = labels.size() == 1 ? labels[0] : torch::cat(labels);
  }
  return d;
}

}  // namespace htga::data

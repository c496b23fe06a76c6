#include "experiments/data/cache.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "experiments/error.h"

namespace htga::data {

namespace fs = std::filesystem;

namespace {

constexpr char kMagic[9] = "HTGADS01";
constexpr char kEnd[9] = "HTGAEND1";
// Enough for ImageNet at 256x256 (1.3M x 3 x 256 x 256 is about 2^38 bytes); above this the
// header is taken to be damaged.
constexpr uint64_t kMaxBytes = uint64_t(1) << 40;

template <typename T>
bool get(std::istream& in, T& v) {
  return static_cast<bool>(in.read(reinterpret_cast<char*>(&v), sizeof v));
}

template <typename T>
void put(std::ostream& out, const T& v) {
  out.write(reinterpret_cast<const char*>(&v), sizeof v);
}

}  // namespace

std::string fnv1a_hex(const std::string& text) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char ch : text) {
    h ^= ch;
    h *= 1099511628211ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::optional<RawDataset> read_cache(const std::string& path, const std::string& key, std::string* why_not) {
  auto fail = [&](const std::string& why) {
    if (why_not) *why_not = why;
    return std::nullopt;
  };
  std::error_code ec;
  const auto file_size = fs::file_size(path, ec);
  if (ec) return fail("no cache file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail("cannot open " + path);
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, kMagic, 8) != 0) return fail(path + ": not an htga cache file");
  uint64_t key_len = 0;
  if (!get(in, key_len) || key_len > (1u << 20)) return fail(path + ": damaged header");
  std::string stored(key_len, '\0');
  if (!in.read(stored.data(), static_cast<std::streamsize>(key_len))) return fail(path + ": damaged header");
  if (stored != key) return fail("made from other files or settings");

  RawDataset d;
  if (!get(in, d.num_classes) || d.num_classes < 1) return fail(path + ": damaged header");
  uint64_t expected = 8 + 8 + key_len + 8 + 8;
  for (RawSplit* s : {&d.train, &d.test}) {
    int64_t dims[4];
    for (auto& x : dims)
      if (!get(in, x) || x < 0) return fail(path + ": damaged header");
    const uint64_t pixels = uint64_t(dims[0]) * dims[1] * dims[2] * dims[3];
    if (pixels > kMaxBytes || dims[0] > int64_t(kMaxBytes / 8)) return fail(path + ": damaged header");
    expected += 32 + pixels + 8 * uint64_t(dims[0]);
    if (expected > file_size)
      return fail(path + ": truncated: " + std::to_string(file_size) + " bytes, the header announces at least " +
                  std::to_string(expected));
    s->images = torch::empty({dims[0], dims[1], dims[2], dims[3]}, torch::kUInt8);
    s->labels = torch::empty({dims[0]}, torch::kInt64);
    if (!in.read(reinterpret_cast<char*>(s->images.data_ptr<uint8_t>()), static_cast<std::streamsize>(pixels)) ||
        !in.read(reinterpret_cast<char*>(s->labels.data_ptr<int64_t>()), static_cast<std::streamsize>(8 * dims[0])))
      return fail(path + ": truncated");
    if (dims[0] > 0 && (s->labels.min().item<int64_t>() < 0 || s->labels.max().item<int64_t>() >= d.num_classes))
      return fail(path + ": label out of range");
  }
  char end[8];
  if (!in.read(end, 8) || std::memcmp(end, kEnd, 8) != 0) return fail(path + ": damaged end");
  if (expected != file_size) return fail(path + ": " + std::to_string(file_size - expected) + " bytes too many");
  if (d.train.images.dim() != 4 || d.train.images.sizes().slice(1) != d.test.images.sizes().slice(1))
    return fail(path + ": train and test images differ in shape");
  return d;
}

void write_cache(const std::string& path, const std::string& key, const RawDataset& d) {
  const fs::path target(path);
  std::error_code ec;
  if (target.has_parent_path()) fs::create_directories(target.parent_path(), ec);
  if (ec) throw InputError(target.parent_path().string() + ": cannot create cache folder: " + ec.message());
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw InputError(tmp + ": cannot write cache file");
    out.write(kMagic, 8);
    put(out, static_cast<uint64_t>(key.size()));
    out.write(key.data(), static_cast<std::streamsize>(key.size()));
    put(out, d.num_classes);
    for (const RawSplit* s : {&d.train, &d.test}) {
      const auto images = s->images.contiguous();
      const auto labels = s->labels.to(torch::kInt64).contiguous();
      for (int64_t x : images.sizes()) put(out, x);
      out.write(reinterpret_cast<const char*>(images.data_ptr<uint8_t>()),
                static_cast<std::streamsize>(images.numel()));
      out.write(reinterpret_cast<const char*>(labels.data_ptr<int64_t>()),
                static_cast<std::streamsize>(8 * labels.numel()));
    }
    out.write(kEnd, 8);
    out.flush();
    if (!out) {
      out.close();
      fs::remove(tmp, ec);
      throw InputError(tmp + ": cannot write cache file (disk full?)");
    }
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw InputError(path + ": cannot write cache file: " + ec.message());
  }
}

}  // namespace htga::data

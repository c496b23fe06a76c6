#include "experiments/data/cache.h"

#include <ATen/Parallel.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include "experiments/config.h"
#include "experiments/error.h"
#include "experiments/pack/format.h"

namespace htga::data {

namespace fs = std::filesystem;

namespace {

// Version 2 adds the CRC-32 of the pixel and label bytes before the end mark: a cache whose
// content was damaged in place (same size) is rebuilt, not trained on.
constexpr char kMagic[9] = "HTGADS02";
constexpr char kEnd[9] = "HTGAEND1";
// Enough for ImageNet at 256x256 (1.3M x 3 x 256 x 256 is about 2^38 bytes); above this the
// header is taken to be damaged.
constexpr uint64_t kMaxBytes = uint64_t(1) << 40;

/// A read-only file mapping, unmapped when the last tensor viewing it goes.
struct Mapping {
  void* addr;
  size_t size;
  Mapping(void* a, size_t n) : addr(a), size(n) {}
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() { ::munmap(addr, size); }
};

/// Reads fields from a mapped file, refusing to run past its end.
struct Cursor {
  const char* base;
  uint64_t size;
  uint64_t pos = 0;
  const char* take(uint64_t n) {
    if (n > size - pos) return nullptr;
    pos += n;
    return base + pos - n;
  }
  bool read(void* out, uint64_t n) {
    const char* p = take(n);
    if (p && n > 0) std::memcpy(out, p, n);
    return p != nullptr;
  }
  template <typename T>
  bool get(T& v) {
    return read(&v, sizeof v);
  }
};

/// pack::crc32_of over large buffers on the intra-op threads: chunks' CRCs joined by crc32_combine.
uint32_t crc_parallel(uint32_t crc, const char* data, uint64_t size) {
  constexpr uint64_t kChunk = 4u << 20;
  const int64_t chunks = static_cast<int64_t>((size + kChunk - 1) / kChunk);
  if (chunks <= 1) return pack::crc32_of(data, size, crc);
  std::vector<uint32_t> part(static_cast<size_t>(chunks));
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const uint64_t off = uint64_t(k) * kChunk;
      part[size_t(k)] = pack::crc32_of(data + off, std::min(kChunk, size - off));
    }
  });
  uLong c = crc;
  for (int64_t k = 0; k < chunks; ++k) {
    const uint64_t off = uint64_t(k) * kChunk;
    c = crc32_combine(c, part[size_t(k)], static_cast<z_off_t>(std::min(kChunk, size - off)));
  }
  return static_cast<uint32_t>(c);
}

template <typename T>
void put(std::ostream& out, const T& v) {
  out.write(reinterpret_cast<const char*>(&v), sizeof v);
}

}  // namespace

std::string fnv1a_hex(const std::string& text) { return experiments::fnv1a_hex(text); }

std::optional<RawDataset> read_cache(const std::string& path, const std::string& key, std::string* why_not) {
  auto fail = [&](const std::string& why) {
    if (why_not) *why_not = why;
    return std::nullopt;
  };
  // The file is mapped, not read: its pages come from the page cache (shared by --jobs cells)
  // without a copy. Copying 55 MB into fresh memory took 0.18-0.28 s here, mostly page faults.
  // Cache files are replaced by renaming a new file into place, never rewritten, so the mapping
  // stays valid while the tensors viewing it live.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(errno == ENOENT ? std::string("no cache file") : "cannot open " + path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return fail("cannot open " + path);
  }
  const auto file_size = static_cast<uint64_t>(st.st_size);
  if (file_size == 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return fail(path + ": not an htga cache file");
  }
  void* p = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);
  if (p == MAP_FAILED) return fail("cannot map " + path + ": " + std::strerror(map_errno));
  auto map = std::make_shared<Mapping>(p, file_size);
  Cursor in{static_cast<const char*>(p), file_size};

  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, kMagic, 7) != 0) return fail(path + ": not an htga cache file");
  if (magic[7] != kMagic[7]) return fail(path + ": an older cache format");
  uint64_t key_len = 0;
  if (!in.get(key_len) || key_len > (1u << 20)) return fail(path + ": damaged header");
  std::string stored(key_len, '\0');
  if (!in.read(stored.data(), key_len)) return fail(path + ": damaged header");
  if (stored != key) return fail("made from other files or settings");

  RawDataset d;
  if (!in.get(d.num_classes) || d.num_classes < 1) return fail(path + ": damaged header");
  uint64_t expected = 8 + 8 + key_len + 8 + 4 + 8;
  uint32_t crc = crc32(0L, Z_NULL, 0);
  for (RawSplit* s : {&d.train, &d.test}) {
    int64_t dims[4];
    for (auto& x : dims)
      if (!in.get(x) || x < 0) return fail(path + ": damaged header");
    const uint64_t pixels = uint64_t(dims[0]) * dims[1] * dims[2] * dims[3];
    if (pixels > kMaxBytes || dims[0] > int64_t(kMaxBytes / 8)) return fail(path + ": damaged header");
    expected += 32 + pixels + 8 * uint64_t(dims[0]);
    if (expected > file_size)
      return fail(path + ": truncated: " + std::to_string(file_size) + " bytes, the header announces at least " +
                  std::to_string(expected));
    const char* pixel_bytes = in.take(pixels);
    s->images = torch::from_blob(
        const_cast<char*>(pixel_bytes), {dims[0], dims[1], dims[2], dims[3]}, [map](void*) {}, torch::kUInt8);
    s->labels = torch::empty({dims[0]}, torch::kInt64);
    if (!in.read(s->labels.data_ptr<int64_t>(), 8 * uint64_t(dims[0]))) return fail(path + ": truncated");
    crc = crc_parallel(crc, pixel_bytes, pixels);
    crc = pack::crc32_of(s->labels.data_ptr<int64_t>(), 8 * uint64_t(dims[0]), crc);
    if (dims[0] > 0 && (s->labels.min().item<int64_t>() < 0 || s->labels.max().item<int64_t>() >= d.num_classes))
      return fail(path + ": label out of range");
  }
  uint32_t stored_crc = 0;
  if (!in.get(stored_crc)) return fail(path + ": truncated");
  if (stored_crc != crc) return fail(path + ": content does not match its checksum");
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
    uint32_t crc = crc32(0L, Z_NULL, 0);
    for (const RawSplit* s : {&d.train, &d.test}) {
      const auto images = s->images.contiguous();
      const auto labels = s->labels.to(torch::kInt64).contiguous();
      for (int64_t x : images.sizes()) put(out, x);
      out.write(reinterpret_cast<const char*>(images.data_ptr<uint8_t>()),
                static_cast<std::streamsize>(images.numel()));
      out.write(reinterpret_cast<const char*>(labels.data_ptr<int64_t>()),
                static_cast<std::streamsize>(8 * labels.numel()));
      crc = crc_parallel(crc, reinterpret_cast<const char*>(images.data_ptr<uint8_t>()), images.numel());
      crc = pack::crc32_of(labels.data_ptr<int64_t>(), 8 * labels.numel(), crc);
    }
    put(out, crc);
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

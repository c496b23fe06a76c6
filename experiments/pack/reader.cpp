#include "experiments/pack/reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "experiments/error.h"

namespace htga::pack {

PackFile::PackFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw InputError(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw InputError(path + ": not a file");
  }
  mapped_ = static_cast<uint64_t>(st.st_size);
  if (mapped_ < kFixedHeaderBytes) {
    ::close(fd);
    throw InputError(path + ": truncated: " + std::to_string(mapped_) + " bytes, no complete header");
  }
  void* map = mmap(nullptr, mapped_, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) throw InputError(path + ": cannot map: " + std::strerror(errno));
  data_ = static_cast<const uint8_t*>(map);
  madvise(map, mapped_, MADV_RANDOM);  // batches read images in a shuffled order
  try {
    header_ = decode_header(data_, mapped_, mapped_, path);
    validate_index();
  } catch (...) {
    munmap(const_cast<uint8_t*>(data_), mapped_);
    throw;
  }
}

PackFile::~PackFile() { munmap(const_cast<uint8_t*>(data_), mapped_); }

void PackFile::validate_index() {
  const uint64_t first = header_bytes(header_.classes), n = header_.count;
  const uint64_t index_offset = header_.index_offset;
  if (index_offset < first || index_offset > mapped_ || (mapped_ - index_offset) / kIndexEntryBytes != n ||
      (mapped_ - index_offset) % kIndexEntryBytes != 0)
    throw InputError(path_ + ": corrupt: the index does not fit " + std::to_string(n) + " images");
  index_ = data_ + index_offset;
  if (crc32_of(index_, n * kIndexEntryBytes) != header_.index_crc)
    throw InputError(path_ + ": corrupt: the index's checksum does not match");
  for (uint64_t i = 0; i < n; ++i) {
    const IndexEntry e = entry(static_cast<int64_t>(i));
    const std::string where = path_ + ": corrupt: image " + std::to_string(i);
    if (e.offset < first || e.offset > index_offset || e.bytes > index_offset - e.offset)
      throw InputError(where + " lies outside the image area");
    if (e.label < 0 || static_cast<uint64_t>(e.label) >= header_.classes.size())
      throw InputError(where + " has label " + std::to_string(e.label) + " of " +
                       std::to_string(header_.classes.size()) + " classes");
    if (e.height == 0 || e.width == 0 || e.bytes == 0) throw InputError(where + " is empty");
    if (header_.mode == Mode::kRaw && static_cast<uint64_t>(e.height) * e.width * 3 != e.bytes)
      throw InputError(where + ": " + std::to_string(e.bytes) + " bytes for " + std::to_string(e.height) + "x" +
                       std::to_string(e.width) + " pixels");
  }
}

void PackFile::decode(int64_t i, JpegCodec& codec, RgbImage& out) const {
  const IndexEntry e = entry(i);
  const uint8_t* p = data_ + e.offset;
  if (header_.mode == Mode::kRaw) {
    out.height = static_cast<int>(e.height);
    out.width = static_cast<int>(e.width);
    out.pixels.assign(p, p + e.bytes);
    return;
  }
  try {
    codec.decode_into(p, e.bytes, /*min_short=*/0, out);
  } catch (const DecodeError& err) {
    throw InputError(path_ + ": image " + std::to_string(i) + ": " + err.what());
  }
  if (out.height != static_cast<int>(e.height) || out.width != static_cast<int>(e.width))
    throw InputError(path_ + ": image " + std::to_string(i) + ": decodes to " + std::to_string(out.height) + "x" +
                     std::to_string(out.width) + ", the index says " + std::to_string(e.height) + "x" +
                     std::to_string(e.width));
}

RgbImage PackFile::decode(int64_t i) const {
  JpegCodec codec;
  RgbImage out;
  decode(i, codec, out);
  return out;
}

void PackFile::drop_pages(int64_t i) const {
  const IndexEntry e = entry(i);
  static const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  // Rounded outwards: a page shared with a neighbour is mapped again if the neighbour is read.
  const uint64_t begin = e.offset / page * page, end = std::min(mapped_, (e.offset + e.bytes + page - 1) / page * page);
  madvise(const_cast<uint8_t*>(data_) + begin, end - begin, MADV_DONTNEED);
}

}  // namespace htga::pack

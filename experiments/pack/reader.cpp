#include "experiments/pack/reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

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
  if (map == MAP_FAILED) {
    ::close(fd);
    throw InputError(path + ": cannot map: " + std::strerror(errno));
  }
  fd_ = fd;
  data_ = static_cast<const uint8_t*>(map);
  try {
    header_ = decode_header(data_, mapped_, mapped_, path);
    validate_index();
    // The check read the whole index: hand its pages back (they stay in the page cache).
    madvise(map, mapped_, MADV_DONTNEED);
  } catch (...) {
    munmap(const_cast<uint8_t*>(data_), mapped_);
    ::close(fd_);
    throw;
  }
}

PackFile::~PackFile() {
  munmap(const_cast<uint8_t*>(data_), mapped_);
  ::close(fd_);
}

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

void PackFile::read(int64_t i, std::vector<uint8_t>& out) const {
  const IndexEntry e = entry(i);
  out.resize(e.bytes);
  uint64_t done = 0;
  while (done < e.bytes) {
    const ssize_t got = pread(fd_, out.data() + done, e.bytes - done, static_cast<off_t>(e.offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0)
      throw std::runtime_error(path_ + ": cannot read image " + std::to_string(i) + ": " + std::strerror(errno));
    done += static_cast<uint64_t>(got);
  }
}

void PackFile::decode(int64_t i, JpegCodec& codec, RgbImage& out) const {
  const IndexEntry e = entry(i);
  if (header_.mode == Mode::kRaw) {
    read(i, out.pixels);
    out.height = static_cast<int>(e.height);
    out.width = static_cast<int>(e.width);
    return;
  }
  thread_local std::vector<uint8_t> bytes;  // the largest JPEG this thread has read
  read(i, bytes);
  const uint8_t* p = bytes.data();
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

}  // namespace htga::pack

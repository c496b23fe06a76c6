#pragma once
// Reading a pack (format.h): PackFile maps the file read-only and checks its header, index and
// sizes once, before anything is read from it; then any thread may decode any image.

#include <cstdint>
#include <string>
#include <vector>

#include "experiments/pack/format.h"
#include "experiments/pack/image.h"

namespace htga::pack {

class PackFile {
 public:
  /// Maps `path` and validates it: magic, version, the file size the header records (a truncated
  /// copy is refused), the index's CRC-32, every entry inside the image area with a known label
  /// and, in raw mode, height * width * 3 bytes. Throws InputError "<path>: truncated: ..." or
  /// "<path>: corrupt: ...".
  explicit PackFile(const std::string& path);
  ~PackFile();
  PackFile(const PackFile&) = delete;
  PackFile& operator=(const PackFile&) = delete;

  const std::string& path() const { return path_; }
  const Header& header() const { return header_; }
  const std::vector<std::string>& classes() const { return header_.classes; }
  int64_t size() const { return static_cast<int64_t>(header_.count); }  // images
  Mode mode() const { return header_.mode; }

  IndexEntry entry(int64_t i) const { return decode_entry(index_ + i * kIndexEntryBytes); }
  int32_t label(int64_t i) const { return entry(i).label; }
  /// The stored bytes of image i (JPEG, or raw pixels), inside the mapping: pages read this way
  /// stay in the process's resident set until it unmaps the file.
  const uint8_t* bytes(int64_t i) const { return data_ + entry(i).offset; }
  /// Copies image i's stored bytes into `out` with pread(2): no mapped pages are left behind, so
  /// streaming a pack larger than memory keeps the resident memory flat.
  void read(int64_t i, std::vector<uint8_t>& out) const;

  /// Image i as uint8 HWC RGB into `out` (its buffer reused), read with pread(2): JPEG decoded
  /// with `codec` (one per thread), raw copied. A JPEG that does not decode, or decodes to
  /// another size than the index says, is an InputError naming the pack and the image.
  void decode(int64_t i, JpegCodec& codec, RgbImage& out) const;
  RgbImage decode(int64_t i) const;  // a codec of its own: for tests and tools, not loops

 private:
  void validate_index();

  std::string path_;
  Header header_;
  const uint8_t* data_ = nullptr;  // the whole file
  uint64_t mapped_ = 0;
  const uint8_t* index_ = nullptr;
  int fd_ = -1;  // kept open for read()
};

}  // namespace htga::pack

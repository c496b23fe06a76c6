#pragma once
// The packed image file of `htga pack` (`train.pack`, `val.pack`): one file per split that worker
// threads stream from without opening a file per image. Every integer is little-endian and of a
// fixed width; offsets are from the start of the file.
//
//   offset  size  field
//   0       8     magic "HTGAPACK"
//   8       4     u32 version (kVersion)
//   12      4     u32 mode: 0 = JPEG, 1 = raw uint8 HWC RGB
//   16      8     u64 image count N
//   24      4     u32 size: the shorter side every image was resized to (--size)
//   28      4     u32 quality: JPEG quality (0 in raw mode)
//   32      8     u64 file size: the whole file, so that a truncated copy is refused
//   40      8     u64 index offset (8-aligned)
//   48      8     u64 inputs fingerprint: FNV-1a of the sorted inputs and the options
//   56      4     u32 class count C
//   60      4     u32 CRC-32 of the index (N entries)
//   64      ...   C class names in label order, each a u32 length then its UTF-8 bytes
//   ...           image bytes, one after the other, in the index's order (JPEG or H*W*3 raw)
//   index   24*N  per image: u64 offset, u32 byte size, i32 label, u32 height, u32 width
//
// The index comes last so that the packer can append images as they are encoded and resume an
// interrupted pack from its journal (pack.h); the header is written last of all.

#include <cstdint>
#include <string>
#include <vector>

namespace htga::pack {

constexpr char kMagic[8] = {'H', 'T', 'G', 'A', 'P', 'A', 'C', 'K'};
constexpr uint32_t kVersion = 1;
constexpr uint64_t kFixedHeaderBytes = 64;
constexpr uint64_t kIndexEntryBytes = 24;

enum class Mode : uint32_t { kJpeg = 0, kRaw = 1 };
const char* mode_name(Mode mode);

struct IndexEntry {
  uint64_t offset = 0;  // of the image's bytes in the file
  uint32_t bytes = 0;   // JPEG size, or height*width*3 in raw mode
  int32_t label = 0;    // index into Header::classes
  uint32_t height = 0;  // pixels of the stored image
  uint32_t width = 0;
};

struct Header {
  uint32_t version = kVersion;
  Mode mode = Mode::kJpeg;
  uint64_t count = 0;
  uint32_t size = 0;
  uint32_t quality = 0;
  uint64_t file_size = 0;
  uint64_t index_offset = 0;
  uint64_t fingerprint = 0;
  uint32_t index_crc = 0;
  std::vector<std::string> classes;  // in label order
};

/// The header's bytes (fixed part and class names); its length is where the image bytes start.
std::string encode_header(const Header& header);
/// Bytes of encode_header() for these class names, without building it.
uint64_t header_bytes(const std::vector<std::string>& classes);
/// Parses and checks the header at the start of `data` (`size` bytes; `file_size` of the whole
/// file). Throws InputError "<name>: <problem>" for a foreign, newer, truncated or corrupt file.
Header decode_header(const uint8_t* data, uint64_t size, uint64_t file_size, const std::string& name);

void encode_entry(const IndexEntry& entry, uint8_t* out);  // kIndexEntryBytes bytes
IndexEntry decode_entry(const uint8_t* in);

/// Little-endian stores and loads.
void put_u32(uint8_t* out, uint32_t v);
void put_u64(uint8_t* out, uint64_t v);
uint32_t get_u32(const uint8_t* in);
uint64_t get_u64(const uint8_t* in);

/// FNV-1a, 64 bits, continued from `h` (start with kFnvBasis).
constexpr uint64_t kFnvBasis = 1469598103934665603ull;
uint64_t fnv1a(const void* data, size_t n, uint64_t h = kFnvBasis);
/// zlib's CRC-32 of `n` bytes, continued from `crc` (start with 0).
uint32_t crc32_of(const void* data, size_t n, uint32_t crc = 0);

}  // namespace htga::pack

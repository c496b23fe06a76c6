#pragma once
// Decoded datasets cached in one binary file each, so that a grid's second run skips decoding
// (gunzip, image decoding, resizing).
//
// File layout (little-endian, as the host writes it):
//   "HTGADS02"                       8 bytes, magic and format version
//   uint64 key length, key bytes     what the cache was made from (see load_dataset)
//   int64 num_classes
//   for train, then test:
//     int64 N, C, H, W
//     N*C*H*W bytes of pixels (uint8, [N, C, H, W] row-major)
//     N int64 labels
//   uint32 CRC-32 of the pixel and label bytes, in that order
//   "HTGAEND1"                       8 bytes
// A file whose size is not exactly what its header announces, or whose bytes do not match the
// CRC, is damaged. read_cache maps the file: the images it returns view the mapping, which is
// read-only (writing into them faults; every user copies rows with index_select first).

#include <optional>
#include <string>

#include "experiments/data/dataset.h"

namespace htga::data {

/// Reads a cache file. Returns nothing, with the reason in `why_not`, when the file is missing,
/// was made from something else (another key) or is damaged; never throws for those.
std::optional<RawDataset> read_cache(const std::string& path, const std::string& key, std::string* why_not);

/// Writes a cache file atomically (a temporary file renamed into place), creating its folder.
/// Throws InputError naming the path when it cannot be written.
void write_cache(const std::string& path, const std::string& key, const RawDataset& dataset);

/// 16 hex digits: FNV-1a 64 of `text` (cache file names and keys).
std::string fnv1a_hex(const std::string& text);

}  // namespace htga::data

#pragma once
// IDX files (the MNIST format, http://yann.lecun.com/exdb/mnist/): a big-endian header
// (0, 0, type, number of dimensions, then each dimension as uint32) followed by the items.

#include <cstdint>
#include <string>
#include <vector>

namespace htga::data {

struct IdxArray {
  std::vector<int64_t> dims;  // e.g. {60000, 28, 28}
  std::vector<uint8_t> data;  // row-major, product(dims) bytes
};

/// Reads an IDX file of unsigned bytes (type 0x08), gzipped or plain. Checks the magic number,
/// the sizes and that the file holds exactly the items its header announces; throws InputError
/// naming the file otherwise.
IdxArray read_idx_u8(const std::string& path);

}  // namespace htga::data

#include "experiments/data/idx.h"

#include <zlib.h>

#include <memory>

#include "experiments/error.h"

namespace htga::data {

namespace {

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};

/// Reads up to `n` bytes; returns how many were read. Throws on a decompression error.
size_t read_some(gzFile f, uint8_t* out, size_t n, const std::string& path) {
  size_t got = 0;
  while (got < n) {
    unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - got, 1u << 30));
    int r = gzread(f, out + got, chunk);
    if (r < 0) {
      int err = 0;
      const char* msg = gzerror(f, &err);
      throw InputError(path + ": cannot decompress: " + (msg ? msg : "zlib error"));
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

}  // namespace

IdxArray read_idx_u8(const std::string& path) {
  std::unique_ptr<gzFile_s, GzCloser> f(gzopen(path.c_str(), "rb"));
  if (!f) throw InputError(path + ": cannot open");
  gzbuffer(f.get(), 1 << 17);

  uint8_t magic[4];
  if (read_some(f.get(), magic, 4, path) != 4) throw InputError(path + ": truncated IDX header");
  if (magic[0] != 0 || magic[1] != 0) throw InputError(path + ": not an IDX file (bad magic number)");
  if (magic[2] != 0x08)
    throw InputError(path + ": IDX type 0x" + std::to_string(magic[2]) +
                     " not supported (expected unsigned bytes, 0x08)");
  int ndims = magic[3];
  if (ndims < 1 || ndims > 4) throw InputError(path + ": IDX file with " + std::to_string(ndims) + " dimensions");

  IdxArray out;
  uint64_t total = 1;
  for (int i = 0; i < ndims; ++i) {
    uint8_t b[4];
    if (read_some(f.get(), b, 4, path) != 4) throw InputError(path + ": truncated IDX header");
    uint64_t d = (uint64_t(b[0]) << 24) | (uint64_t(b[1]) << 16) | (uint64_t(b[2]) << 8) | b[3];
    if (d == 0) throw InputError(path + ": IDX dimension " + std::to_string(i) + " is 0");
    total *= d;
    if (total > (uint64_t(1) << 34)) throw InputError(path + ": IDX sizes too large");
    out.dims.push_back(static_cast<int64_t>(d));
  }
  out.data.resize(total);
  size_t got = read_some(f.get(), out.data.data(), total, path);
  if (got != total)
    throw InputError(path + ": truncated: header announces " + std::to_string(total) + " bytes of data, file has " +
                     std::to_string(got));
  uint8_t extra;
  if (read_some(f.get(), &extra, 1, path) != 0) throw InputError(path + ": more data than the header announces");
  return out;
}

}  // namespace htga::data

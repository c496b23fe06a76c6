#include "experiments/pack/format.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "experiments/error.h"

namespace htga::pack {

const char* mode_name(Mode mode) { return mode == Mode::kRaw ? "raw" : "jpeg"; }

void put_u32(uint8_t* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
}
void put_u64(uint8_t* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t get_u32(const uint8_t* in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(in[i]) << (8 * i);
  return v;
}
uint64_t get_u64(const uint8_t* in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(in[i]) << (8 * i);
  return v;
}

uint64_t fnv1a(const void* data, size_t n, uint64_t h) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

uint32_t crc32_of(const void* data, size_t n, uint32_t crc) {
  const auto* p = static_cast<const Bytef*>(data);
  while (n > 0) {  // zlib takes a uInt length
    const uInt chunk = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
    crc = static_cast<uint32_t>(::crc32(crc, p, chunk));
    p += chunk;
    n -= chunk;
  }
  return crc;
}

uint64_t header_bytes(const std::vector<std::string>& classes) {
  uint64_t n = kFixedHeaderBytes;
  for (const std::string& c : classes) n += 4 + c.size();
  return n;
}

std::string encode_header(const Header& h) {
  std::string out(header_bytes(h.classes), '\0');
  auto* p = reinterpret_cast<uint8_t*>(out.data());
  std::memcpy(p, kMagic, 8);
  put_u32(p + 8, h.version);
  put_u32(p + 12, static_cast<uint32_t>(h.mode));
  put_u64(p + 16, h.count);
  put_u32(p + 24, h.size);
  put_u32(p + 28, h.quality);
  put_u64(p + 32, h.file_size);
  put_u64(p + 40, h.index_offset);
  put_u64(p + 48, h.fingerprint);
  put_u32(p + 56, static_cast<uint32_t>(h.classes.size()));
  put_u32(p + 60, h.index_crc);
  uint8_t* q = p + kFixedHeaderBytes;
  for (const std::string& c : h.classes) {
    put_u32(q, static_cast<uint32_t>(c.size()));
    std::memcpy(q + 4, c.data(), c.size());
    q += 4 + c.size();
  }
  return out;
}

namespace {

[[noreturn]] void refuse(const std::string& name, const std::string& why) { throw InputError(name + ": " + why); }

std::vector<std::string> decode_classes(const uint8_t* data, uint64_t size, uint32_t count, const std::string& name) {
  std::vector<std::string> classes;
  uint64_t at = kFixedHeaderBytes;
  for (uint32_t c = 0; c < count; ++c) {
    if (at + 4 > size) refuse(name, "truncated: the class names end early");
    const uint32_t len = get_u32(data + at);
    if (len > size - at - 4) refuse(name, "truncated: class name " + std::to_string(c) + " ends early");
    classes.emplace_back(reinterpret_cast<const char*>(data + at + 4), len);
    at += 4 + len;
  }
  return classes;
}

}  // namespace

Header decode_header(const uint8_t* data, uint64_t size, uint64_t file_size, const std::string& name) {
  if (size < kFixedHeaderBytes) refuse(name, "truncated: " + std::to_string(size) + " bytes, no complete header");
  if (std::memcmp(data, kMagic, 8) != 0) refuse(name, "not an htga pack file (no HTGAPACK magic)");
  Header h;
  h.version = get_u32(data + 8);
  if (h.version != kVersion)
    refuse(name, "pack format version " + std::to_string(h.version) + ", this htga reads version " +
                     std::to_string(kVersion) + " (pack it again)");
  const uint32_t mode = get_u32(data + 12);
  if (mode > 1) refuse(name, "corrupt header: unknown mode " + std::to_string(mode));
  h.mode = static_cast<Mode>(mode);
  h.count = get_u64(data + 16);
  h.size = get_u32(data + 24);
  h.quality = get_u32(data + 28);
  h.file_size = get_u64(data + 32);
  h.index_offset = get_u64(data + 40);
  h.fingerprint = get_u64(data + 48);
  h.index_crc = get_u32(data + 60);
  if (file_size < h.file_size)
    refuse(name, "truncated: " + std::to_string(file_size) + " bytes, the header says " + std::to_string(h.file_size));
  if (file_size != h.file_size)
    refuse(name, "corrupt: " + std::to_string(file_size) + " bytes, the header says " + std::to_string(h.file_size));
  h.classes = decode_classes(data, size, get_u32(data + 56), name);
  return h;
}

void encode_entry(const IndexEntry& e, uint8_t* out) {
  put_u64(out, e.offset);
  put_u32(out + 8, e.bytes);
  put_u32(out + 12, static_cast<uint32_t>(e.label));
  put_u32(out + 16, e.height);
  put_u32(out + 20, e.width);
}

IndexEntry decode_entry(const uint8_t* in) {
  IndexEntry e;
  e.offset = get_u64(in);
  e.bytes = get_u32(in + 8);
  e.label = static_cast<int32_t>(get_u32(in + 12));
  e.height = get_u32(in + 16);
  e.width = get_u32(in + 20);
  return e;
}

}  // namespace htga::pack

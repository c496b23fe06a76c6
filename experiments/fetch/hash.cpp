#include "experiments/fetch/hash.h"

#include <openssl/evp.h>

#include <cstdio>
#include <memory>

#include "experiments/fetch/fetch.h"

namespace htga::fetch {

namespace {

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct FileClose {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

}  // namespace

std::string file_digest(const std::string& path, HashKind kind) {
  std::unique_ptr<std::FILE, FileClose> in(std::fopen(path.c_str(), "rb"));
  if (!in) throw FetchError(path + ": cannot open to compute its " + name_of(kind));
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), kind == HashKind::kMd5 ? EVP_md5() : EVP_sha256(), nullptr) != 1)
    throw FetchError(std::string("OpenSSL: cannot start a ") + name_of(kind) + " digest");
  std::vector<unsigned char> buffer(1 << 20);
  size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), in.get())) > 0) EVP_DigestUpdate(ctx.get(), buffer.data(), n);
  if (std::ferror(in.get())) throw FetchError(path + ": read error while computing its " + name_of(kind));
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  static const char* kHex = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    hex += kHex[md[i] >> 4];
    hex += kHex[md[i] & 15];
  }
  return hex;
}

const Checksum* matching_checksum(const std::string& path, const std::vector<Checksum>& checksums) {
  std::string digests[2];  // computed once per kind
  for (const Checksum& c : checksums) {
    std::string& d = digests[c.kind == HashKind::kMd5 ? 0 : 1];
    if (d.empty()) d = file_digest(path, c.kind);
    if (d == c.hex) return &c;
  }
  return nullptr;
}

}  // namespace htga::fetch

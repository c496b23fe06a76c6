#pragma once
// File digests with OpenSSL's EVP interface (MD5 and SHA-256), and the check of a file against
// the checksums a dataset's authors published.

#include <string>
#include <vector>

#include "experiments/fetch/registry.h"

namespace htga::fetch {

/// The lower-case hexadecimal digest of the file at `path`; throws FetchError when it cannot be read.
std::string file_digest(const std::string& path, HashKind kind);

/// The first of `checksums` the file at `path` matches, or nullptr when it matches none.
const Checksum* matching_checksum(const std::string& path, const std::vector<Checksum>& checksums);

}  // namespace htga::fetch

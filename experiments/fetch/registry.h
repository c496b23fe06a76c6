#pragma once
// The public datasets `htga data fetch` can get: where each file comes from, its published
// checksum, how it is unpacked and the layout the loaders (experiments/data/) read afterwards.
// The table in registry.cpp is the one place a URL or a checksum is written.

#include <cstdint>
#include <string>
#include <vector>

namespace htga::fetch {

enum class HashKind { kMd5, kSha256 };

/// A published digest of a file and who published it.
struct Checksum {
  HashKind kind = HashKind::kSha256;
  std::string hex;     // lower-case hexadecimal
  std::string source;  // where it is published ("torchvision MNIST.resources", ...)
};

/// How a downloaded file becomes part of the dataset's folder.
enum class Unpack {
  kNone,   // kept as it is (e.g. gzipped IDX files, which the loader reads directly)
  kTarGz,  // a gzipped tar archive, unpacked
  kZip,    // a zip archive, unpacked
};

/// One file of a dataset's official distribution.
struct RemoteFile {
  std::vector<std::string> urls;    // official URLs, tried in order; a mirror uses the first's file name
  std::vector<Checksum> checksums;  // any one matching verifies the file; empty = none published
  std::string unknown_reason;       // why no checksum is published (when checksums is empty)
  int64_t size = -1;                // bytes, when published (-1 = unknown)
  Unpack unpack = Unpack::kNone;    // kept or unpacked
  std::string into;                 // where, relative to the data root ("" = the root itself)
  std::vector<std::string> local;   // folders that may already hold the file (a Debian package)
};

/// What is done to the unpacked files before they are moved into place.
enum class PostStep {
  kNone,
  kMrpc,          // GLUE's download script: MRPC train.tsv/dev.tsv split from the MSR files by dev ids
  kTinyImagenet,  // train/<wnid>/images/*.JPEG and val/images + val_annotations.txt -> class folders
};

/// One dataset `htga data fetch NAME` knows.
struct DatasetEntry {
  std::string name;                   // the NAME of `htga data fetch`
  std::string folder;                 // the folder it leaves under the root (moved into place at once)
  std::string what;                   // one line: what it is
  std::string licence;                // one line: its licence or terms and the home page
  std::vector<RemoteFile> files;      // empty when it cannot be fetched (see not_fetchable)
  PostStep post = PostStep::kNone;    // a step between unpacking and moving into place
  std::vector<std::string> expected;  // paths relative to the root that make it complete
  std::vector<std::string> loaders;   // the dataset names of experiments::datasets() that read it
  std::string grid_path;              // the "path" a grid gives to read it (empty when the default)
  std::string not_fetchable;          // non-empty: why it cannot be downloaded, and what to do instead
};

/// The table, in the order `htga data list` prints it.
const std::vector<DatasetEntry>& datasets();

/// The entry named `name`; throws InputError listing the valid names when there is none.
const DatasetEntry& find_dataset(const std::string& name);

/// Loader dataset names (experiments::datasets()) that no entry fetches, each with the reason.
struct NotFetched {
  std::string loader;
  std::string reason;
};
const std::vector<NotFetched>& loaders_not_fetched();

/// "md5" or "sha256".
const char* name_of(HashKind kind);

/// The file name of a URL: its last path component, without a query or fragment.
std::string url_file_name(const std::string& url);

}  // namespace htga::fetch

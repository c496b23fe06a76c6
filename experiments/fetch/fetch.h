#pragma once
// `htga data`: fetch a dataset of the registry (download or copy, verify, unpack, move into
// place), tell whether one is present and complete, and verify it again later.
//
// Nothing half-written reaches the data root: files are downloaded to <root>/.htga-fetch/
// (a `.part` file that the next try resumes), verified, unpacked into a staging folder there,
// and the dataset's folder is renamed into place only when it is complete.

#include <cstdint>
#include <iosfwd>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "experiments/fetch/registry.h"

namespace htga::fetch {

/// A download, a checksum or an archive that failed: main() prints it and exits with 1.
class FetchError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The folder under the data root where downloads and unpacking are staged.
constexpr const char* kStagingDir = ".htga-fetch";
/// The record a fetch leaves in the dataset's folder: the sources and each file's SHA-256.
constexpr const char* kManifestName = ".htga-fetch.json";
/// Environment variables: a mirror, and checksums that replace the published ones (tests only).
constexpr const char* kMirrorEnv = "HTGA_DATA_MIRROR";
constexpr const char* kChecksumsOverrideEnv = "HTGA_DATA_CHECKSUMS_OVERRIDE";

struct FetchOptions {
  std::string root = "data";    // the data root the grids' paths start from
  std::string mirror;           // BASE: an http(s) URL, a file:// URL or a folder; "" = official URLs
  bool force = false;           // replace the dataset's folder when present
  bool progress = false;        // progress bars on the error stream
  bool use_local = true;        // try local copies (a Debian package) before the network
  int attempts = 3;             // transfers of one URL, each resuming the last
  long connect_timeout_s = 30;  // to open a connection
  long stall_timeout_s = 60;    // a transfer under 1 byte/s this long is aborted
  /// File name -> SHA-256 replacing the published checksums (HTGA_DATA_CHECKSUMS_OVERRIDE, for
  /// tests); used only with a mirror, and announced on the error stream.
  std::map<std::string, std::string> checksum_override;
};

struct FetchResult {
  bool already_present = false;         // complete before: nothing fetched
  std::string path;                     // the dataset's folder
  std::vector<std::string> unverified;  // files kept with no published checksum to check
};

/// Fetches `entry` under options.root. Throws InputError for a dataset that cannot be fetched
/// (ImageNet: the message says where to get it) or a folder in the way; FetchError when a source
/// fails, a checksum does not match or an archive is damaged: then the data root is as it was,
/// but for verified downloads and resumable `.part` files under <root>/.htga-fetch/.
FetchResult fetch_dataset(const DatasetEntry& entry, const FetchOptions& options, std::ostream& err);

struct DatasetStatus {
  bool present = false;              // its folder exists
  bool complete = false;             // every expected path exists
  std::vector<std::string> missing;  // expected paths that do not
  uint64_t bytes = 0;                // size of its folder
  bool fetched = false;              // a fetch manifest is there
};
DatasetStatus dataset_status(const DatasetEntry& entry, const std::string& root);

struct VerifyResult {
  std::vector<std::string> ok;        // files that match
  std::vector<std::string> problems;  // one line each: missing, changed, or not matching the published checksum
  std::vector<std::string> notes;     // what could not be checked, and why
  bool good() const { return problems.empty(); }
};
/// Checks the dataset's files: those kept as downloaded against the published checksums, the
/// unpacked ones against the SHA-256 the fetch recorded, and the layout against `expected`.
VerifyResult verify_dataset(const DatasetEntry& entry, const std::string& root);

/// Reads an override file: lines "<sha256>  <file name>" (sha256sum's output). Throws InputError.
std::map<std::string, std::string> read_checksum_override(const std::string& path);

/// "1.2 GB", "340 kB": a size for people.
std::string human_size(uint64_t bytes);

}  // namespace htga::fetch
